"""Answer checking: extract the answer a response commits to and judge it against gold as a ``Verdict``.

``extract`` finds answers (pure string work), ``math`` compares them with math-verify in worker
processes, ``verdicts`` names the outcomes. Importing this package defines names only: no pools start and
math-verify/sympy load on first use. ``code`` runs candidate programs against tests in a bubblewrap
sandbox (imported from ``adacot.verify.code`` on demand).
"""

from adacot.verify.extract import (
    EXTRACTION_METHODS,
    Extraction,
    extract_answer,
    last_boxed,
    parse_gold,
    strip_reasoning,
)
from adacot.verify.math import check_golds, verify_many, verify_one
from adacot.verify.verdicts import STATUSES, Verdict

__all__ = [
    "EXTRACTION_METHODS",
    "STATUSES",
    "Extraction",
    "Verdict",
    "check_golds",
    "extract_answer",
    "last_boxed",
    "parse_gold",
    "strip_reasoning",
    "verify_many",
    "verify_one",
]
