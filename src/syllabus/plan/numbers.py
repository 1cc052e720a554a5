"""Numbers read back from a run folder, shown without ever failing on one that is missing or not finite.

JSON has no ``inf`` or ``nan``: the metrics files write them as ``null`` (``train.metrics``), and older run
folders hold them as the strings ``"inf"``/``"nan"``. Whatever a record holds, :func:`as_number` gives a
finite float or ``None`` and :func:`number_text` a formatted number or ``"not measured"``.
"""

from __future__ import annotations

import math

NOT_MEASURED = "not measured"


def as_number(value) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, ``null``, a string, a bool, ``inf`` or ``nan``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def number_text(value, spec: str = ".4g", missing: str = NOT_MEASURED) -> str:
    """``format(value, spec)``, or ``missing`` when ``value`` is not a finite number."""
    number = as_number(value)
    return missing if number is None else format(number, spec)


def finite_or_none(value):
    """A JSON-ready copy of ``value``: every non-finite float inside dicts and lists replaced by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value
