"""The one exception a stage raises when it cannot do its job, and nothing else.

``StageFailure`` carries a one-line message that says what went wrong and what to do; stage scripts run
their ``main`` through ``stageio.run_stage``, which prints it as ``error: ...`` and exits non-zero, so
DVC records no lock and a rerun starts again (after the stage saved what it paid for: the response cache
commits answers as they arrive). Library code raises it for outcomes that make a stage's output a lie:
too many failed model requests, no usable rows, a level that would rest on a non-finite score. Bugs and
contract errors stay ordinary exceptions with their tracebacks.
"""

from __future__ import annotations


class StageFailure(RuntimeError):
    """A stage could not do its job; ``str(error)`` is one line saying why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the caller wrote
