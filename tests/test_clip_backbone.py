import math
import time

import open_clip
import pytest
import torch

from croft.utils.errors import CheckpointError

from croft.clip import (
    COOP_NAMES,
    DEFAULT_TEMPLATE,
    ENSEMBLE_TEMPLATES,
    OPENAI_FILES,
    BackboneUnavailableError,
    feature_dim,
    load_clip,
    logit_scale,
    text_features,
)
from croft.clip import backbone

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation

# Non-weight entries of OpenAI's TorchScript state dicts
OPENAI_META = {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}
PROMPTS = ["a photo of a dog.", "itap of a golden retriever."]


@pytest.fixture(scope="module")
def tiny():
    return load_clip("tiny", pretrained="none")


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def make_source(quick_gelu, seed=0):
    torch.manual_seed(seed)
    model = open_clip.create_model("tiny", force_quick_gelu=quick_gelu).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # differs from the random-init value
    return model


def assert_same_features(model, tokenizer, source, images):
    with torch.no_grad():
        tokens = tokenizer(PROMPTS)
        torch.testing.assert_close(model.encode_image(images), source.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(model.encode_text(tokens), source.encode_text(tokens), atol=1e-5, rtol=0)
    assert logit_scale(model) == pytest.approx(logit_scale(source), rel=1e-6)


def test_tiny_random_init_shapes(tiny, images):
    model, tokenizer = tiny
    with torch.no_grad():
        assert model.encode_image(images).shape == (3, 64)
        assert model.encode_text(tokenizer(PROMPTS)).shape == (2, 64)
    assert feature_dim(model) == 64
    assert logit_scale(model) == pytest.approx(1 / 0.07, rel=1e-4)


def test_model_is_frozen_fp32_eval(tiny):
    model, _ = tiny
    params = list(model.parameters())
    assert params and all(not p.requires_grad for p in params)
    assert all(p.dtype == torch.float32 for p in params)
    assert not any(m.training for m in model.modules())


def test_quickgelu_suffix_selects_quickgelu():
    model, _ = load_clip("tiny-quickgelu", pretrained="none")
    assert isinstance(model.transformer.resblocks[0].mlp.gelu, open_clip.model.QuickGELU)
    model, _ = load_clip("tiny", pretrained="none")
    assert not isinstance(model.transformer.resblocks[0].mlp.gelu, open_clip.model.QuickGELU)


def test_coop_name_mapping():
    assert COOP_NAMES["ViT-B/16"] == "ViT-B-16"
    assert COOP_NAMES["ViT-B/32"] == "ViT-B-32"
    assert COOP_NAMES["ViT-L/14@336px"] == "ViT-L-14-336"
    assert COOP_NAMES["RN50"] == "RN50"
    assert set(COOP_NAMES) == {"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64",
                               "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"}
    assert all(arch in open_clip.list_models() for arch in COOP_NAMES.values())
    assert OPENAI_FILES["ViT-B-16"] == "ViT-B-16.pt"
    assert OPENAI_FILES["ViT-L-14-336"] == "ViT-L-14-336px.pt"


def test_openai_state_dict_roundtrip(tmp_path, images):
    source = make_source(quick_gelu=True)
    state_dict = dict(source.state_dict(), **{k: torch.tensor(v) for k, v in OPENAI_META.items()})
    path = tmp_path / "tiny_openai.pt"
    torch.save(state_dict, path)
    model, tokenizer = load_clip("tiny", pretrained=str(path))
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())
    assert_same_features(model, tokenizer, source, images)


def test_openai_fp16_state_dict_is_recognised(tmp_path, images):
    source = make_source(quick_gelu=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    torch.save(half, tmp_path / "half.pt")
    source.load_state_dict(half)  # the fp16-rounded weights, held in fp32
    model, tokenizer = load_clip("tiny", pretrained=str(tmp_path / "half.pt"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert_same_features(model, tokenizer, source, images)


def test_openai_torchscript_roundtrip(tmp_path, images):
    source = make_source(quick_gelu=True)
    scripted = make_source(quick_gelu=True)
    for key, value in OPENAI_META.items():
        if hasattr(scripted, key):  # open_clip keeps some of them as plain int attributes
            delattr(scripted, key)
        scripted.register_buffer(key, torch.tensor(value))
    path = tmp_path / "tiny_jit.pt"
    torch.jit.script(scripted).save(str(path))
    # A TorchScript file given as a path loads only when the user allows it (loading can run code).
    with pytest.raises(CheckpointError, match=r"TorchScript archive.*ALLOW_TORCHSCRIPT True"):
        load_clip("tiny", pretrained=str(path))
    model, tokenizer = load_clip("tiny", pretrained=str(path), allow_torchscript=True)
    assert_same_features(model, tokenizer, source, images)


def test_open_clip_state_dicts_load(tmp_path, images):
    source = make_source(quick_gelu=False)
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in source.state_dict().items()}},
               tmp_path / "train_ckpt.pt")
    for name in ("plain.pt", "train_ckpt.pt"):
        model, tokenizer = load_clip("tiny", pretrained=str(tmp_path / name))
        assert_same_features(model, tokenizer, source, images)


def test_openai_file_in_cache_dir_is_used(tmp_path, images, monkeypatch):
    monkeypatch.setitem(OPENAI_FILES, "tiny", "tiny.pt")
    source = make_source(quick_gelu=True)
    torch.save(source.state_dict(), tmp_path / "tiny.pt")
    model, tokenizer = load_clip("tiny", pretrained="openai", cache_dir=str(tmp_path))
    assert_same_features(model, tokenizer, source, images)  # QuickGELU even without OpenAI markers


def test_openai_offline_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(BackboneUnavailableError) as info:
        load_clip("ViT-B/16", pretrained="openai", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert str(tmp_path / "ViT-B-16.pt") in message
    assert "ViT-B/16" in message and "not cached" in message and "offline" in message


def test_unreachable_host_fails_fast_without_env(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(backbone, "_download_endpoint", lambda cfg: ("host.invalid", 443, True))
    start = time.monotonic()
    with pytest.raises(BackboneUnavailableError, match="host.invalid:443 is not reachable") as info:
        load_clip("RN50", pretrained="openai", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    assert str(tmp_path / "RN50.pt") in str(info.value)


def test_reachability_probe_is_time_bounded(monkeypatch):
    def hanging_connect(*args, **kwargs):
        time.sleep(5)
        raise OSError("timed out")

    monkeypatch.setattr(backbone, "_PROBE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(backbone.socket, "create_connection", hanging_connect)
    start = time.monotonic()
    assert not backbone._reachable("example.org", 443, True)
    assert time.monotonic() - start < 2


def test_open_clip_tag_offline_fails_fast(tmp_path):
    with pytest.raises(BackboneUnavailableError, match="laion400m_e31"):
        load_clip("ViT-B-32", pretrained="laion400m_e31", cache_dir=str(tmp_path))


def test_missing_checkpoint_path(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt") as info:
        load_clip("tiny", pretrained=str(missing))
    assert str(missing) in str(info.value)


def test_unknown_names():
    with pytest.raises(ValueError) as info:
        load_clip("ViT-Z/99", pretrained="none")
    message = str(info.value)
    assert all(name in message for name in COOP_NAMES)
    assert "open_clip.list_models()" in message
    with pytest.raises(ValueError, match="not_a_tag"):
        load_clip("tiny", pretrained="not_a_tag")
    with pytest.raises(ValueError, match="OpenAI released no weights"):
        load_clip("tiny", pretrained="openai")


def test_wrong_architecture_checkpoint(tmp_path):
    torch.save({"visual.proj": torch.zeros(3, 3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not match"):
        load_clip("tiny", pretrained=str(tmp_path / "bad.pt"))


def test_templates():
    assert DEFAULT_TEMPLATE == "a photo of a {}."
    assert ENSEMBLE_TEMPLATES == (
        "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
        "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
    )


def test_single_template_text_features_are_raw(tiny):
    model, tokenizer = tiny
    classnames = ["golden_retriever", "cat", "sea_lion"]
    features = text_features(model, tokenizer, classnames)
    with torch.no_grad():
        expected = model.encode_text(tokenizer(
            ["a photo of a golden retriever.", "a photo of a cat.", "a photo of a sea lion."]))
    torch.testing.assert_close(features, expected, atol=1e-6, rtol=0)
    # batching changes only float rounding
    torch.testing.assert_close(text_features(model, tokenizer, classnames, batch_size=2), expected, atol=1e-5, rtol=0)
    assert not torch.allclose(features.norm(dim=-1), torch.ones(3))
    custom = text_features(model, tokenizer, ["cat"], template="a sketch of a {}.")
    with torch.no_grad():
        torch.testing.assert_close(custom, model.encode_text(tokenizer(["a sketch of a cat."])), atol=1e-6, rtol=0)


def test_ensemble_text_features(tiny):
    model, tokenizer = tiny
    classnames = ["golden_retriever", "cat"]
    features = text_features(model, tokenizer, classnames, ensemble=True)
    expected = []
    with torch.no_grad():
        for name in classnames:
            prompts = [t.replace("{}", name.replace("_", " ")) for t in ENSEMBLE_TEMPLATES]
            embeddings = model.encode_text(tokenizer(prompts))
            embeddings = embeddings / torch.linalg.vector_norm(embeddings, dim=1, keepdim=True)
            mean = embeddings.sum(dim=0) / len(ENSEMBLE_TEMPLATES)
            expected.append(mean / torch.linalg.vector_norm(mean))
    torch.testing.assert_close(features, torch.stack(expected), atol=1e-6, rtol=0)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(2), atol=1e-6, rtol=0)
    assert not features.requires_grad


def test_template_without_placeholder(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="a photo of a thing"):
        text_features(model, tokenizer, ["cat"], template="a photo of a thing.")
