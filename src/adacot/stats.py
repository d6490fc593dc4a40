"""Small statistics shared by the evaluation and the reports: a mean with its standard error.

Pure functions on sequences of floats; no frames, no I/O, nothing at import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error) of ``values``; the error is 0 for fewer than two values.

    Sums are exact (``math.fsum``), so the result does not depend on the order of ``values`` (a group-by
    that hands rows over in another order must not change a metric's last digit).
    """
    if not values:
        return 0.0, 0.0
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))
