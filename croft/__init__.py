"""croft: robust fine-tuning of CLIP (CRoFT, ICML 2024) with baselines and open-set evaluation.

``croft.load(run_dir)`` / ``croft.Predictor.from_run(run_dir)`` restore a finished run for
prediction (:mod:`croft.predict`, ``docs/predict.md``). They are imported on first use, so
``import croft`` stays light (no torch).
"""
_LAZY = {"load": "predict", "Predictor": "predict", "Predictions": "predict"}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
