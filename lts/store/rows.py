"""Plain Python rows out of pandas frames: ``None`` for missing, never NaN.

pandas 3 stores a NULL of a text column as NaN (a float) and turns an integer column holding a
NULL into floats, so ``row["message"].startswith(...)`` raises and ``if row["budget"]`` is true for
a missing budget. Every frame built from the store goes back to rows through :func:`records`, so
code reading a row sees what the database holds: ``str``/``int``/``float`` or ``None``.
"""

from __future__ import annotations

from typing import Any


def records(df: Any) -> list[dict[str, Any]]:
    """``df.to_dict("records")`` with NaN/NaT/NA as ``None`` and numpy scalars as Python values."""
    if df is None or len(df) == 0:
        return []
    plain = df.astype(object)
    return plain.where(plain.notna(), None).to_dict("records")

