"""Contrastive pretraining of the tiny CLIP on synthetic data (croft.testing.toy_pretrain, tools/pretrain_tiny_clip.py)."""
import importlib.util
import os

import open_clip
import pytest
import torch
import torch.nn.functional as F

from croft.clip import backbone, load_clip, logit_scale
from croft.testing import toy_pretrain as tp

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["a photo of a dog.", "a cartoon of a house.", "a photo of a chair.", "a sketch of a giraffe."]


@pytest.fixture(scope="module")
def short_run(synthetic_root):
    """A 40-step pretraining (a few seconds)."""
    return tp.pretrain_tiny_clip(synthetic_root, steps=40, batch_size=16, seed=0, log_every=0)


@pytest.fixture(scope="module")
def three_steps_seed5(synthetic_root):
    """A 3-step pretraining with seed 5 and batch 8 (shared by the determinism and CLI tests)."""
    return tp.pretrain_tiny_clip(synthetic_root, steps=3, batch_size=8, seed=5, log_every=0)


def image_count(folder):
    return sum(len([f for f in files if f.endswith(".jpg")]) for _, _, files in os.walk(folder))


def _fixed_batch_loss(model, root):
    """The contrastive loss of ``model`` on one fixed batch (full-image views, one caption per image)."""
    pairs = tp.build_pairs(root)[::4]
    images = tp.decode_images([p.path for p in pairs])
    captions = [p.captions[0] for p in pairs]
    views = tp.TrainViews(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    with torch.no_grad():
        pixels = views(images, torch.Generator().manual_seed(0))
        tokens = open_clip.get_tokenizer("tiny")(captions)
        return float(tp.clip_loss(model.encode_image(pixels), model.encode_text(tokens), model.logit_scale))


def test_pairs_exclude_holdout_and_open_set(synthetic_root):
    pairs = tp.build_pairs(synthetic_root)
    assert {p.dataset for p in pairs} == {"PACS", "VLCS"}
    assert {p.domain for p in pairs if p.dataset == "PACS"} == {"art_painting", "cartoon", "photo"}
    # one pair per image of the pretraining domains: every PACS domain but sketch, every VLCS domain
    pacs = os.path.join(synthetic_root, "PACS", "images")
    expected = sum(image_count(os.path.join(pacs, d)) for d in os.listdir(pacs) if d != "sketch")
    expected += image_count(os.path.join(synthetic_root, "VLCS", "images"))
    assert len(pairs) == expected and len({p.path for p in pairs}) == expected
    for p in pairs:
        rel = os.path.relpath(p.path, synthetic_root).split(os.sep)
        assert rel[0] in ("PACS", "VLCS") and "sketch" not in rel
    cartoon_dog = next(p for p in pairs if p.domain == "cartoon" and p.classname == "dog")
    assert cartoon_dog.captions == ("a photo of a dog.", "a cartoon of a dog.")
    painting = next(p for p in pairs if p.domain == "art_painting")
    assert painting.captions[1].startswith("a painting of a ")
    vlcs = next(p for p in pairs if p.dataset == "VLCS")
    assert vlcs.captions == (f"a photo of a {vlcs.classname}.",)
    other = tp.build_pairs(synthetic_root, holdout=("photo", "cartoon"))
    assert {p.domain for p in other if p.dataset == "PACS"} == {"art_painting", "sketch"}
    with pytest.raises(ValueError, match="unknown PACS domain"):
        tp.build_pairs(synthetic_root, holdout=("sketchy",))
    with pytest.raises(FileNotFoundError, match="make_synthetic_data"):
        tp.build_pairs(os.path.join(synthetic_root, "nowhere"))


def test_train_views_shape_and_determinism(synthetic_root):
    images = tp.decode_images([p.path for p in tp.build_pairs(synthetic_root)[:5]])
    views = tp.TrainViews()
    a = views(images, torch.Generator().manual_seed(3))
    b = views(images, torch.Generator().manual_seed(3))
    assert a.shape == (5, 3, 224, 224) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, views(images, torch.Generator().manual_seed(4)))
    # a crop of the whole (square) image: the bicubic resize of the image, maybe flipped, CLIP-normalised
    whole = tp.TrainViews(scale=(1.0, 1.0), ratio=(1.0, 1.0))(images, torch.Generator().manual_seed(3))
    mean = torch.tensor(tp.CLIP_MEAN).view(3, 1, 1) * 255.0
    std = torch.tensor(tp.CLIP_STD).view(3, 1, 1) * 255.0
    flipped = 0
    for view, image in zip(whole, images):
        resized = F.interpolate(image[None], size=(224, 224), mode="bicubic", antialias=True)[0]
        expected = (resized.float() - mean) / std
        assert torch.equal(view, expected) or torch.equal(view, expected.flip(-1))
        flipped += not torch.equal(view, expected)
    assert 0 < flipped < len(images)  # both cases occur with this seed


def test_prefix_text_encoding_is_exact():
    model = tp.create_tiny_model(seed=1)
    tokens = open_clip.get_tokenizer("tiny")(PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(tp.encode_text_prefix(model, tokens), model.encode_text(tokens), atol=1e-5, rtol=0)


def test_clip_loss_matches_hand_computation():
    img = torch.tensor([[3.0, 0.0], [0.0, 2.0]])  # normalised: e1, e2
    txt = torch.tensor([[1.0, 1.0], [0.0, 5.0]])  # normalised: (e1 + e2) / sqrt(2), e2
    scale = torch.log(torch.tensor(10.0))
    r = 10 / 2 ** 0.5
    logits = torch.tensor([[r, 0.0], [r, 10.0]])  # image x text
    expected_i2t = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 1]) / 2
    expected_t2i = -(torch.log_softmax(logits.t(), 1)[0, 0] + torch.log_softmax(logits.t(), 1)[1, 1]) / 2
    assert float(tp.clip_loss(img, txt, scale)) == pytest.approx(float(expected_i2t + expected_t2i) / 2, rel=1e-5)


def test_short_pretraining_reduces_loss(short_run, synthetic_root):
    assert len(short_run.losses) == 40
    assert sum(short_run.losses[-8:]) / 8 < sum(short_run.losses[:8]) / 8
    before = _fixed_batch_loss(tp.create_tiny_model(seed=0).eval(), synthetic_root)
    after = _fixed_batch_loss(short_run.model, synthetic_root)
    assert after < before - 0.05, (before, after)
    assert not short_run.model.training
    assert all(not p.requires_grad for p in short_run.model.parameters())


def test_checkpoint_roundtrips_through_load_clip(short_run, tmp_path):
    path = tp.save_openai_checkpoint(short_run.model, tmp_path / "tiny_pretrained.pt")
    again = tp.save_openai_checkpoint(short_run.model, tmp_path / "again.pt")
    assert (tmp_path / "tiny_pretrained.pt").read_bytes() == (tmp_path / "again.pt").read_bytes() and again
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    assert backbone._looks_openai(state_dict)  # OpenAI format: loads with QuickGELU
    assert int(state_dict["input_resolution"]) == short_run.model.visual.image_size[0]
    assert int(state_dict["context_length"]) == short_run.model.context_length
    assert all(v.dtype == torch.float32 for k, v in state_dict.items() if k not in backbone._OPENAI_META_KEYS)

    model, tokenizer = load_clip("tiny", pretrained=str(path))
    assert model.transformer.resblocks[0].mlp.gelu.__class__.__name__ == "QuickGELU"
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    tokens = tokenizer(PROMPTS)
    source = short_run.model
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), source.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(model.encode_text(tokens), source.encode_text(tokens), atol=1e-5, rtol=0)
    assert logit_scale(model) == pytest.approx(logit_scale(source), rel=1e-6)


def test_same_seed_same_weights(synthetic_root, three_steps_seed5):
    a = three_steps_seed5
    b = tp.pretrain_tiny_clip(synthetic_root, steps=3, batch_size=8, seed=5, log_every=0)
    c = tp.pretrain_tiny_clip(synthetic_root, steps=3, batch_size=8, seed=6, log_every=0)
    assert a.losses == b.losses
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_caller_rng_untouched(synthetic_root):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tp.pretrain_tiny_clip(synthetic_root, steps=1, batch_size=4, log_every=0)
    assert torch.equal(torch.rand(3), expected)


def test_bad_arguments(synthetic_root):
    with pytest.raises(ValueError, match="steps"):
        tp.pretrain_tiny_clip(synthetic_root, steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        tp.pretrain_tiny_clip(synthetic_root, batch_size=1)


def _cli():
    path = os.path.join(REPO, "tools", "pretrain_tiny_clip.py")
    spec = importlib.util.spec_from_file_location("pretrain_tiny_clip", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_the_checkpoint_of_its_arguments(synthetic_root, three_steps_seed5, tmp_path, capsys):
    """The CLI passes its arguments through: its file is the API's checkpoint of the same run, byte for byte."""
    out = tmp_path / "sub" / "tiny.pt"
    args = ["--data", synthetic_root, "--output", str(out), "--steps", "3", "--batch-size", "8", "--seed", "5"]
    assert _cli().main(args) == 0
    expected = tp.save_openai_checkpoint(three_steps_seed5.model, tmp_path / "api.pt")
    assert out.read_bytes() == (tmp_path / "api.pt").read_bytes() and expected
    printed = capsys.readouterr().out
    accuracy = tp.zero_shot_accuracy(three_steps_seed5.model, synthetic_root, "sketch")
    assert f"zero-shot accuracy, PACS sketch (held out), 'a photo of a {{}}.': {accuracy:.1f}%" in printed
    model, _ = load_clip("tiny", pretrained=str(out))  # loadable
    state = model.state_dict()
    for key, value in three_steps_seed5.model.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_cli_reports_missing_data(tmp_path, capsys):
    assert _cli().main(["--data", str(tmp_path / "none"), "--output", str(tmp_path / "x.pt"), "--steps", "1"]) == 2
    assert "make_synthetic_data" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
