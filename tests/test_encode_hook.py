"""The encode hook: batches of images go through ``model.encode``; text features that vary by batch
(DPLCLIP) stay per sample in :class:`Outputs`, and the MCM score uses each sample's own."""
import numpy as np
import pytest
import torch

from croft.data.batch import Batch
from croft.data.feature_source import EncoderSource, ImageSource
from croft.data.images import EpochBatchSampler
from croft.data.transforms import build_transform
from croft.config import get_cfg_default
from croft.evaluation.inference import (FINAL, TRAINING, InferenceOutput, Outputs, OutputsCollector,
                                        run_inference)
from croft.evaluation.scores import ScoreContext, compute_scores
from croft.ood.scores import mcm_score


def _text(seed, classes=4, dim=6):
    return torch.nn.functional.normalize(torch.randn(classes, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


class FakeModel:
    """encode: mean colour of each image (3 numbers) padded to D = 6; inference: cosine logits against
    a text matrix per batch (``per_batch``) or one for all."""

    def __init__(self, per_batch):
        self.per_batch = per_batch
        self.encoded, self.settings, self.calls = 0, [], 0

    def set_model_mode(self, mode):
        self.mode = mode

    def encode(self, images, settings=TRAINING):
        self.encoded += len(images)
        self.settings.append(settings)
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)

    def inference(self, features, settings=TRAINING):
        self.calls += 1
        text = _text(self.calls if self.per_batch else 0)
        img = torch.nn.functional.normalize(features, dim=1)
        per_sample = text.expand(len(img), -1, -1) if self.per_batch else text
        return InferenceOutput(10 * img @ text.t(), img, per_sample)


def image_batches(sizes):
    gen = torch.Generator().manual_seed(3)
    out, start = [], 0
    for n in sizes:
        images = torch.rand(n, 3, 8, 8, generator=gen)
        out.append(Batch(features=None, labels=torch.arange(n) % 4, domains=torch.zeros(n, dtype=torch.long),
                         impaths=[f"img{start + i}.jpg" for i in range(n)], indices=torch.arange(start, start + n),
                         images=images))
        start += n
    return out


def test_image_batches_go_through_encode_with_the_settings():
    model = FakeModel(per_batch=False)
    batches = image_batches([3, 3, 2])
    out = run_inference(model, batches, FINAL)
    assert model.encoded == 8 and model.settings == [FINAL] * 3 and model.mode == "eval"
    expected = torch.cat([model.encode(b.images) for b in batches])
    assert torch.allclose(out.features, torch.nn.functional.normalize(expected, dim=1))
    # a feature batch is used as is: encode is not called
    model = FakeModel(per_batch=False)
    features = [Batch(features=torch.randn(2, 6), labels=torch.zeros(2, dtype=torch.long),
                      domains=torch.zeros(2, dtype=torch.long), impaths=["a", "b"], indices=torch.arange(2))]
    run_inference(model, features, TRAINING)
    assert model.encoded == 0


def test_constant_text_features_stay_one_matrix():
    out = run_inference(FakeModel(per_batch=False), image_batches([3, 3, 2]), TRAINING)
    assert out.text_index is None and torch.equal(out.text_features, _text(0))


def test_text_features_that_vary_by_batch_are_kept_per_sample_and_mcm_uses_them():
    model = FakeModel(per_batch=True)
    batches = image_batches([3, 3, 2])
    out = run_inference(model, batches, TRAINING)
    assert out.text_features.shape == (3, 4, 6) and out.text_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    for k in range(3):
        assert torch.equal(out.text_features[k], _text(k + 1))
    mcm = compute_scores(out, ["mcm"], ScoreContext(mcm_temperature=0.5))["mcm"]
    expected = np.concatenate([mcm_score(out.features[a:b], _text(k + 1), temperature=0.5).numpy()
                               for k, (a, b) in enumerate([(0, 3), (3, 6), (6, 8)])])
    np.testing.assert_array_equal(mcm, expected)
    # against the last batch's text (what evaluation did before) the first batches' scores differ
    stale = mcm_score(out.features, _text(3), temperature=0.5).numpy()
    assert not np.allclose(stale[:6], expected[:6])
    # a subset keeps each sample's own text features
    part = out.subset([7, 0, 4])
    assert part.text_index.tolist() == [2, 0, 1]
    np.testing.assert_allclose(compute_scores(part, ["mcm"], ScoreContext(mcm_temperature=0.5))["mcm"],
                               expected[[7, 0, 4]], rtol=0, atol=1e-12)


def test_per_sample_text_without_an_index_is_scored_per_sample():
    """One batch's Outputs built straight from an InferenceOutput (as a predictor may): N x C x D text."""
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(4, 6, generator=gen)
    text = torch.stack([_text(1), _text(1), _text(2), _text(1)])
    outputs = Outputs(torch.randn(4, 4, generator=gen), features, torch.zeros(4, dtype=torch.long), text)
    got = compute_scores(outputs, ["mcm"], ScoreContext())["mcm"]
    expected = [float(mcm_score(features[i:i + 1], text[i])[0]) for i in range(4)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_collector_merges_runs_of_equal_matrices_inside_a_batch():
    collector = OutputsCollector()
    text = torch.stack([_text(1), _text(1), _text(2)])
    collector.add(InferenceOutput(torch.zeros(3, 4), torch.zeros(3, 6), text), torch.zeros(3, dtype=torch.long))
    collector.add(InferenceOutput(torch.zeros(2, 4), torch.zeros(2, 6), _text(2)), torch.zeros(2, dtype=torch.long))
    out = collector.outputs()
    assert out.text_index.tolist() == [0, 0, 1, 1, 1] and len(out.text_features) == 2


@pytest.fixture(scope="module")
def pacs_items(synthetic_root):
    from croft.data.datasets import build_dataset

    cfg = get_cfg_default()
    cfg.merge_from_list(["DATASET.ROOT", synthetic_root, "DATASET.NAME", "PACS", "TEST_ENV", "test_on_sketch.json",
                         "DATASET.NUM_SHOTS", "2"])
    return build_dataset(cfg).train_x


def test_image_source_gives_the_pixels_the_encoder_source_encodes(pacs_items):
    """The online pipeline of a trained encoder: the same seeded views and batches as the frozen encoder's."""
    cfg = get_cfg_default()
    cfg.merge_from_list(["INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['random_resized_crop', 'random_flip']"])
    transform = build_transform(cfg, is_train=True)
    seen = []

    def encode(images):
        seen.append(images)
        return images.flatten(1)[:, :5]

    for epoch in (0, 1):
        sampler_a = EpochBatchSampler(len(pacs_items), 4, True, seed=1, num_views=2)
        sampler_b = EpochBatchSampler(len(pacs_items), 4, True, seed=1, num_views=2)
        sampler_a.set_epoch(epoch), sampler_b.set_epoch(epoch)
        images = list(ImageSource("cpu").train_loader(pacs_items, transform, 1, sampler_a, 2))
        seen.clear()
        encoded = list(EncoderSource(encode, "cpu").train_loader(pacs_items, transform, 1, sampler_b, 2))
        assert len(images) == len(encoded) == len(pacs_items) // 4
        for a, b, pixels in zip(images, encoded, seen):
            assert a.features is None and b.images is None
            assert torch.equal(a.images, pixels) and a.impaths == b.impaths
            assert torch.equal(a.labels, b.labels) and torch.equal(a.indices, b.indices)
    again = list(ImageSource("cpu").train_loader(pacs_items, transform, 1, sampler_a, 2))
    assert all(torch.equal(x.images, y.images) for x, y in zip(images, again))
    assert not torch.equal(images[0].images, list(ImageSource("cpu").train_loader(
        pacs_items, transform, 2, sampler_a, 2))[0].images)  # another augmentation seed, other views
