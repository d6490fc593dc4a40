"""The difficulty vocabulary: the five named levels, easiest first.

This module is the single place that names levels; everything else imports ``LEVELS`` from here (or from
``levels.py``, which re-exports it). It holds no logic, so that modules which only need the names (params
validation, sampling) do not depend on the level rule: editing the rule must not rerun stages that never
apply it. Where a question gets its level is ``levels.py``.
"""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("easy", "medium", "hard", "very_hard", "extreme")


def level_index(level: str) -> int:
    """Position of ``level`` in ``LEVELS`` (0 = easiest); a clear error for unknown names."""
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; known levels are {', '.join(LEVELS)}") from None
