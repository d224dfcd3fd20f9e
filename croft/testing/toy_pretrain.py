"""Contrastive pretraining of the ``tiny`` CLIP on croft's synthetic data (for demos and CPU tests).

A randomly initialised ``tiny`` CLIP classifies at chance, so the numbers of a demo run with it
mean nothing. :func:`pretrain_tiny_clip` trains it for a minute or so on a CPU with CLIP's
contrastive (InfoNCE) objective on image-caption pairs drawn from the synthetic datasets of
:mod:`croft.testing.synthetic`:

- PACS images of every domain except the held-out ones (default: ``sketch``), captioned
  ``"a photo of a {class}."`` or ``"a {style} of a {class}."`` (style: ``painting``, ``cartoon``,
  ``photo``), one of the two drawn per image and step;
- VLCS images (all four domains), captioned ``"a photo of a {class}."``.

The held-out PACS domain and the open-set sets (``dtd``, ``food-101``, ``caltech-101``) are never
read, so a demo that holds out ``sketch`` and tests open-set detection on those sets evaluates on
data the backbone has not seen. The ImageNet tree is not read either.

Images are decoded once into memory; each step draws a CLIP-style train view of every image in the
batch (random resized crop to 224 px with scale (0.5, 1), horizontal flip, CLIP normalisation).
Optimiser: AdamW (CLIP's betas and eps; no weight decay on gains, biases, embeddings and the logit
scale), linear warm-up then cosine decay; the logit scale is learnable and capped at 100 as in CLIP.
The same arguments (seed included) and the same number of torch threads give the same weights
(``threads``, default 1), and the saved file is then byte for byte the same.

What to expect (synthetic root of ``tools/make_synthetic_data.py`` with its defaults, 500 steps,
about 60-65 s of training on one thread of an otherwise idle 2-core machine; zero-shot with
``"a photo of a {}."``, 7 classes, chance 14.3%): the seen PACS domains reach 98-100%. A held-out
``art_painting`` reaches about 83%, but a held-out ``sketch`` stays at chance: sketches are dark
outlines on white paper, the other domains are told apart by colour, and this 2-layer, width-64
ViT with 32-pixel patches does not learn outline shapes in a minute (even with sketches *in* the
training data it reaches only about 36% on them).

The demo (``scripts/demo.sh``, docs/demo.md) pretrains instead on the pool that
:func:`croft.testing.demo_data.make_demo_data` writes to ``ROOT/pretrain`` (``datasets=("PACS",)``:
photo, cartoon and sketch images of the seven classes, 840 pairs, no held-out style, no unseen
class, none of the benchmark's images). Same 500 steps (about 50-60 s); zero-shot accuracy on the
demo benchmark is then about 58% on the held-out art_painting and 73-77% on the source val split,
whose class hues differ a little from the pool's by design.

:func:`save_openai_checkpoint` writes the model as an OpenAI-format state dict (the weights plus
OpenAI's ``input_resolution`` / ``context_length`` / ``vocab_size`` entries, fp32), which
``load_clip("tiny", pretrained=path)`` recognises and builds with QuickGELU, the activation the
model is trained with here.
"""
import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from ..clip.backbone import _drop_root_log
from ..utils.atomic import atomic_write

ARCH = "tiny"
IMAGE_SIZE = 224
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_LOGIT_SCALE = 100.0

DEFAULT_STEPS = 500
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = 2e-3
DEFAULT_WEIGHT_DECAY = 0.1
DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_HOLDOUT = ("sketch",)
# One thread: the weights then do not depend on the machine's core count, and on 2 cores shared with
# other work it beats two (on 2 idle cores two threads take ~50 s instead of ~60 s for the default run).
DEFAULT_THREADS = 1

PACS_STYLE_WORDS = {"art_painting": "painting", "cartoon": "cartoon", "photo": "photo", "sketch": "sketch"}
PACS_TEMPLATES = ("a photo of a {cls}.", "a {style} of a {cls}.")
VLCS_TEMPLATES = ("a photo of a {cls}.",)
# Folders of the synthetic root that pretraining reads; everything else (open-set sets, ImageNet) is ignored.
SOURCES = {"PACS": PACS_TEMPLATES, "VLCS": VLCS_TEMPLATES}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

logger = logging.getLogger("croft.toy_pretrain")


@dataclass(frozen=True)
class Pair:
    """One training image and the captions it may be paired with."""
    path: str
    dataset: str
    domain: str
    classname: str
    captions: tuple


@dataclass
class PretrainResult:
    model: torch.nn.Module  # the trained model, fp32, eval mode
    losses: list  # contrastive loss of every step
    seconds: float  # wall time of the training loop (data loading excluded)
    load_seconds: float  # wall time to collect and decode the images
    num_pairs: int
    captions: list  # every distinct caption
    config: dict = field(default_factory=dict)


def build_pairs(data_root, holdout=DEFAULT_HOLDOUT, datasets=tuple(SOURCES)):
    """The image-caption pairs of ``data_root`` (a :func:`~croft.testing.synthetic.make_synthetic_data` root).

    PACS domains named in ``holdout`` are skipped (VLCS has no domain of those names). Sorted, so the
    order does not depend on the file system.
    """
    holdout = set(holdout)
    unknown = [d for d in datasets if d not in SOURCES]
    if unknown:
        raise ValueError(f"unknown pretraining dataset(s) {unknown}; choose from {sorted(SOURCES)}")
    bad = holdout - set(PACS_STYLE_WORDS)
    if bad:
        raise ValueError(f"unknown PACS domain(s) to hold out {sorted(bad)}; PACS domains: {sorted(PACS_STYLE_WORDS)}")
    pairs = []
    for dataset in datasets:
        images_dir = os.path.join(data_root, dataset, "images")
        if not os.path.isdir(images_dir):
            raise FileNotFoundError(
                f"{images_dir} not found: pass the root written by tools/make_synthetic_data.py --root DIR"
            )
        for domain in sorted(os.listdir(images_dir)):
            domain_dir = os.path.join(images_dir, domain)
            if not os.path.isdir(domain_dir) or (dataset == "PACS" and domain in holdout):
                continue
            style = PACS_STYLE_WORDS.get(domain, "photo")
            for classname in sorted(os.listdir(domain_dir)):
                class_dir = os.path.join(domain_dir, classname)
                if not os.path.isdir(class_dir):
                    continue
                name = classname.replace("_", " ")
                captions = tuple(dict.fromkeys(t.format(cls=name, style=style) for t in SOURCES[dataset]))
                for file_name in sorted(os.listdir(class_dir)):
                    if file_name.lower().endswith(_IMAGE_SUFFIXES):
                        pairs.append(Pair(os.path.join(class_dir, file_name), dataset, domain, classname, captions))
    if not pairs:
        raise ValueError(f"no training images under {data_root} (datasets {list(datasets)}, holdout {sorted(holdout)})")
    return pairs


def decode_images(paths):
    """Every image as a 3×H×W uint8 tensor (RGB), decoded once."""
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous())
    return images


class TrainViews:
    """CLIP-style train views of uint8 images: random resized crop, horizontal flip, normalisation.

    All randomness comes from ``generator`` (crop boxes as torchvision's ``RandomResizedCrop``
    samples them: area share and log-uniform aspect ratio, ten tries, then a central fallback).
    Bicubic resampling, as croft's test transform.
    """

    def __init__(self, size=IMAGE_SIZE, scale=CROP_SCALE, ratio=CROP_RATIO, mean=CLIP_MEAN, std=CLIP_STD,
                 interpolation="bicubic"):
        self.size, self.scale, self.ratio, self.interpolation = size, scale, ratio, interpolation
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255.0

    def crop_box(self, height, width, generator):
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            u = torch.rand(2, generator=generator).tolist()
            target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[0])
            aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                return top, left, h, w
        # fallback: the largest central crop whose aspect ratio lies in the range
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, images, generator):
        """An N×3×size×size float batch of normalised views of the uint8 ``images``."""
        batch = torch.empty(len(images), 3, self.size, self.size, dtype=torch.uint8)
        for k, img in enumerate(images):
            top, left, h, w = self.crop_box(img.shape[1], img.shape[2], generator)
            # uint8 resampling with antialias=True is PIL-like and several times faster than on floats
            view = F.interpolate(img[None, :, top:top + h, left:left + w], size=(self.size, self.size),
                                 mode=self.interpolation, antialias=True)
            flip = bool(torch.rand(1, generator=generator) < 0.5)
            batch[k] = view[0].flip(-1) if flip else view[0]
        return batch.float().sub_(self.mean).div_(self.std)


def encode_text_prefix(model, tokens):
    """``model.encode_text(tokens)`` computed on the tokens up to the longest end-of-text token.

    Exact for CLIP's causal text tower pooled at the end-of-text token (the largest token id):
    no position attends to later ones, so the padding after it changes nothing. It makes the text
    side of a step several times cheaper (captions are ~10 of the 77 tokens).
    """
    if getattr(model, "text_pool_type", None) != "argmax" or not isinstance(model.text_projection, torch.Tensor):
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return x @ model.text_projection


def clip_loss(image_features, text_features, logit_scale):
    """CLIP's symmetric InfoNCE loss; the i-th image and the i-th text are a positive pair.

    Captions repeat within a batch here (a class has a few captions). Equal captions have equal
    features, and for those this loss equals the variant that counts every pair sharing a caption
    as positive, so no special treatment is needed.
    """
    image_features = F.normalize(image_features, dim=-1)
    text_features = F.normalize(text_features, dim=-1)
    logits = logit_scale.exp() * image_features @ text_features.t()
    labels = torch.arange(logits.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def create_tiny_model(seed=0):
    """A randomly initialised ``tiny`` CLIP with QuickGELU (the activation of OpenAI-format files)."""
    torch.manual_seed(seed)
    with _drop_root_log("No pretrained weights loaded"):
        return open_clip.create_model(ARCH, force_quick_gelu=True)


def _param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        embedding = "embedding" in name or name == "logit_scale"
        (no_decay if param.ndim < 2 or embedding else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step, steps, lr, warmup):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * lr * (1.0 + math.cos(math.pi * progress))


def _train(images, choices, all_tokens, views, steps, seed, batch_size, lr, weight_decay, warmup, log_every):
    with torch.random.fork_rng(devices=[]):
        model = create_tiny_model(seed)
        model.train()
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6,
                                      fused=True)
        losses, order, cursor = [], [], 0
        start = time.perf_counter()
        for step in range(steps):
            if cursor + batch_size > len(order):  # a new epoch: reshuffle, drop the incomplete tail
                order, cursor = torch.randperm(len(images), generator=generator).tolist(), 0
            batch = order[cursor:cursor + batch_size]
            cursor += batch_size
            pick = torch.randint(0, 1 << 30, (len(batch),), generator=generator).tolist()
            text_ids = [choices[i][r % len(choices[i])] for i, r in zip(batch, pick)]
            pixels = views([images[i] for i in batch], generator)
            # encode each distinct caption of the batch once
            unique = sorted(set(text_ids))
            position = {t: k for k, t in enumerate(unique)}
            text_features = encode_text_prefix(model, all_tokens[unique])[[position[t] for t in text_ids]]
            image_features = model.encode_image(pixels)
            loss = clip_loss(image_features, text_features, model.logit_scale)

            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, steps, lr, warmup)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
            losses.append(loss.item())
            if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
                logger.info(f"step {step + 1}/{steps}  loss {losses[-1]:.4f}  "
                            f"logit scale {model.logit_scale.exp().item():.1f}  {time.perf_counter() - start:.1f} s")
        return model, losses, time.perf_counter() - start


def pretrain_tiny_clip(data_root, steps=DEFAULT_STEPS, seed=0, batch_size=DEFAULT_BATCH_SIZE, lr=DEFAULT_LR,
                       weight_decay=DEFAULT_WEIGHT_DECAY, warmup_fraction=DEFAULT_WARMUP_FRACTION,
                       holdout=DEFAULT_HOLDOUT, datasets=tuple(SOURCES), threads=DEFAULT_THREADS,
                       log_every=50):
    """Train a ``tiny`` CLIP from scratch on ``data_root``'s synthetic images; see the module docstring.

    Returns a :class:`PretrainResult`. The global torch RNG of the caller is left as it was.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a contrastive batch needs negatives), got {batch_size}")
    start = time.perf_counter()
    pairs = build_pairs(data_root, holdout=holdout, datasets=datasets)
    images = decode_images([p.path for p in pairs])
    pair_captions = [p.captions for p in pairs]
    load_seconds = time.perf_counter() - start

    captions = sorted({c for texts in pair_captions for c in texts})
    caption_index = {c: i for i, c in enumerate(captions)}
    choices = [[caption_index[c] for c in texts] for texts in pair_captions]
    tokenizer = open_clip.get_tokenizer(ARCH)
    all_tokens = tokenizer(captions)
    batch_size = min(batch_size, len(images))
    views = TrainViews()
    warmup = max(1, int(round(warmup_fraction * steps)))

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model, losses, seconds = _train(images, choices, all_tokens, views, steps, seed, batch_size, lr, weight_decay,
                                        warmup, log_every)
    finally:
        torch.set_num_threads(previous_threads)

    model.eval().requires_grad_(False)
    config = {"arch": ARCH, "steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "warmup_steps": warmup, "holdout": sorted(holdout),
              "datasets": list(datasets), "threads": threads,
              "num_pairs": len(images), "num_captions": len(captions)}
    return PretrainResult(model, losses, seconds, load_seconds, len(images), captions, config)


def openai_state_dict(model):
    """The model's weights as an OpenAI-format state dict: fp32 tensors plus OpenAI's metadata entries."""
    state_dict = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    state_dict["input_resolution"] = torch.tensor(int(model.visual.image_size[0]))
    state_dict["context_length"] = torch.tensor(int(model.context_length))
    state_dict["vocab_size"] = torch.tensor(int(model.vocab_size))
    return state_dict


def save_openai_checkpoint(model, path):
    """Write ``model`` as an OpenAI-format state dict (loads with QuickGELU); atomic. Returns ``path``."""
    # A file object: the archive's inner folder name is then fixed, whatever the file's name.
    return atomic_write(os.fspath(path), lambda f: torch.save(openai_state_dict(model), f), binary=True)


@torch.no_grad()
def zero_shot_accuracy(model, data_root, domain, dataset="PACS", template="a photo of a {}.", batch_size=64):
    """Zero-shot accuracy (%) on every image of ``data_root/dataset/images/domain``, with croft's test view
    (bicubic resize to 224, CLIP normalisation) and the single prompt ``template``."""
    from ..clip.text import text_features

    domain_dir = os.path.join(data_root, dataset, "images", domain)
    if not os.path.isdir(domain_dir):
        raise FileNotFoundError(f"{domain_dir} not found")
    classnames = sorted(c for c in os.listdir(domain_dir) if os.path.isdir(os.path.join(domain_dir, c)))
    paths, labels = [], []
    for label, classname in enumerate(classnames):
        for name in sorted(os.listdir(os.path.join(domain_dir, classname))):
            if name.lower().endswith(_IMAGE_SUFFIXES):
                paths.append(os.path.join(domain_dir, classname, name))
                labels.append(label)
    from torchvision import transforms as T

    test_view = T.Compose([
        T.Resize(IMAGE_SIZE, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(IMAGE_SIZE),
        T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    weights = F.normalize(text_features(model, open_clip.get_tokenizer(ARCH), classnames, template), dim=-1)
    correct = 0
    for i in range(0, len(paths), batch_size):
        batch = []
        for path in paths[i:i + batch_size]:
            with Image.open(path) as img:
                batch.append(test_view(img.convert("RGB")))
        predictions = (F.normalize(model.encode_image(torch.stack(batch)), dim=-1) @ weights.t()).argmax(dim=-1)
        correct += int((predictions == torch.tensor(labels[i:i + batch_size])).sum())
    return 100.0 * correct / len(paths)
