import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def hf_hub_offline():
    """No test may touch the network: open_clip and huggingface_hub must stay offline."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = previous


@pytest.fixture(scope="session", autouse=True)
def feature_cache_dir(tmp_path_factory):
    """The feature cache's default folder (CROFT_CACHE_DIR) is a session temp dir, never ~/.cache."""
    previous = os.environ.get("CROFT_CACHE_DIR")
    os.environ["CROFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("feature_cache"))
    yield os.environ["CROFT_CACHE_DIR"]
    if previous is None:
        os.environ.pop("CROFT_CACHE_DIR", None)
    else:
        os.environ["CROFT_CACHE_DIR"] = previous


# ---------------------------------------------------------------- synthetic data (dataset layer)

@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A synthetic ``$DATA`` tree (PACS, VLCS, dtd, food-101, caltech-101), made once per session.

    Treat it as read-only: tests that change files copy what they change first.
    """
    from croft.testing.synthetic import make_synthetic_data

    root = tmp_path_factory.mktemp("synthetic_data")
    make_synthetic_data(str(root))
    return str(root)


# ---------------------------------------------------------------- pinned Dassl / CoOp (interop tests)

@pytest.fixture(scope="session")
def pinned_dassl(tmp_path_factory):
    """The pinned Dassl and CoOp copies import (probed once per session); otherwise skip, or fail under
    CROFT_REQUIRE_DASSL=1 (croft/testing/third_party.py)."""
    from croft.testing.third_party import missing_reason, skip_or_fail

    reason = missing_reason(tmp_path_factory.mktemp("dassl_probe"))
    if reason:
        skip_or_fail(reason)
    return True
