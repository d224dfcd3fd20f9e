"""The pinned Dassl and CoOp copies for the interop tests, found once.

They are at ``$CROFT_DASSL_PATH`` / ``$CROFT_COOP_PATH``, else at ``../shared/third_party/{Dassl.pytorch,CoOp}``
beside the repository (where CI has them, read-only). A test that needs them and finds them missing (or
Dassl's import-time dependencies, requirements-dassl.txt) skips and says why, or fails under
``CROFT_REQUIRE_DASSL=1`` (CI): :func:`skip_or_fail`. ``tests/conftest.py``'s ``pinned_dassl`` fixture probes
once per session.
"""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _third_party(env, name):
    value = os.environ.get(env, "")
    return Path(value) if value else REPO.parent / "shared" / "third_party" / name


DASSL = _third_party("CROFT_DASSL_PATH", "Dassl.pytorch")
COOP = _third_party("CROFT_COOP_PATH", "CoOp")


def required():
    """``CROFT_REQUIRE_DASSL=1``: a missing copy fails instead of skipping."""
    return os.environ.get("CROFT_REQUIRE_DASSL", "").strip() not in ("", "0")


def subprocess_env(with_coop=False):
    """The environment of a subprocess that imports Dassl (and CoOp's folder with ``with_coop``) and this croft."""
    env = dict(os.environ)
    paths = [str(DASSL)] + ([str(COOP)] if with_coop else []) + [str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1")
    env.pop("CROFT_TRACEBACK", None)
    return env


def missing_reason(cwd):
    """Why the pinned copies cannot serve the tests (``None`` when Dassl imports and CoOp's train.py is there)."""
    if not (DASSL / "dassl" / "__init__.py").is_file():
        return f"Dassl not found at {DASSL} (set CROFT_DASSL_PATH)"
    if not (COOP / "train.py").is_file():
        return f"CoOp not found at {COOP} (set CROFT_COOP_PATH)"
    proc = subprocess.run([sys.executable, "-c", "import dassl.engine"], env=subprocess_env(), cwd=str(cwd),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"Dassl at {DASSL} does not import ({last}); pip install -r requirements-dassl.txt"
    return None


def skip_or_fail(reason, what="Dassl/CoOp interop tests"):
    """Skip with ``reason`` (and a warning naming ``what``), or fail under ``CROFT_REQUIRE_DASSL=1``."""
    if required():
        pytest.fail(f"CROFT_REQUIRE_DASSL=1: {reason}")
    warnings.warn(f"{what} skipped: {reason}")
    pytest.skip(reason)
