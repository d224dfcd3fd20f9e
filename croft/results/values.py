"""How the results tables read and spell values of ``results.json``: numbers, settings, LaTeX text.

One place for the conventions every part of the tables shares (:mod:`croft.results.records` reads
values with them, :mod:`croft.results.settings` and the writers print them).
"""
import json
import math
import numbers

__all__ = ["number", "value_text", "checked_number", "normalise", "format_value", "latex_escape"]


def number(value):
    """A finite float, or None for anything else (missing, null, bool, string, NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def value_text(value):
    """A value as results.json spells it (NaN, Infinity, "text", true, null), at most 60 characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def checked_number(value, path, key, warnings, null_ok=False):
    """:func:`number` of ``value``; a present value that is not a finite number adds a warning.

    The warning names the file and the dotted key, e.g. ``path: open_set.DTD.energy.auroc = NaN is
    not a number; ignored``. ``null`` (None) is silent when ``null_ok`` (a documented "not available").
    """
    v = number(value)
    if v is None and not (value is None and null_ok):
        finite = isinstance(value, float) and math.isinf(value)
        warnings.append(f"{path}: {key} = {value_text(value)} is not a {'finite ' if finite else ''}number; ignored")
    return v


def normalise(value):
    """Canonical form so that 15 and 15.0 (or [1, 2] and (1, 2)) are the same setting."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    return str(value)


def format_value(v):
    """A setting's value as the tables print it: ``0.002``, ``True``, ``a,b`` for lists, ``k:v`` for dicts."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, list):
        return ",".join(format_value(x) for x in v)
    if isinstance(v, dict):
        return ",".join(f"{k}:{format_value(x)}" for k, x in sorted(v.items()))
    return str(v)


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text):
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
