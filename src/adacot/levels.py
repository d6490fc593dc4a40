"""The difficulty vocabulary: the five named levels, easiest first.

This module is the single place that names levels; everything else imports ``LEVELS``. It is not where
questions get their level (that is ``grading.py``) nor where levels get weights (``distribution.py``).
"""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("easy", "medium", "hard", "very_hard", "extreme")


def level_index(level: str) -> int:
    """Position of ``level`` in ``LEVELS`` (0 = easiest); a clear error for unknown names."""
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; known levels are {', '.join(LEVELS)}") from None
