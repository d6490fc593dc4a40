"""Prompt templates: load a YAML prompt set and render chat conversations from questions.

A prompt set has a ``version`` that every generated row records, the ``domain`` it is written for (math or
code; stages refuse a set of another domain than ``params.domain``), one template per role (``student`` for
grading and evaluation, ``teacher`` for solutions) and, optionally, the PRM judge's wording (``judge``:
``system`` and a ``user`` template with {question}, {previous} and {step}; absent = the built-in math
judge). This module only renders text; it does not call models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adacot.llm.base import Conversation

ROLES = ("student", "teacher")
DOMAINS = ("math", "code")


@dataclass(frozen=True)
class PromptSet:
    """Templates per role, with the version written into output rows."""

    version: str
    templates: dict[str, dict[str, str]]
    domain: str = "math"
    judge: dict[str, str] | None = None

    def render(self, role: str, question: str) -> Conversation:
        """The chat conversation that asks ``question`` in ``role``'s template."""
        template = self.templates[role]
        messages = []
        if template.get("system"):
            messages.append({"role": "system", "content": template["system"]})
        messages.append({"role": "user", "content": template["user"].format(question=question)})
        return tuple(messages)


def parse_prompt_set(raw: Any) -> PromptSet:
    """Validate a loaded YAML mapping into a ``PromptSet`` with a clear error on a bad file."""
    if not isinstance(raw, dict) or not isinstance(raw.get("version"), str):
        raise ValueError("a prompt file needs a string `version` and one mapping per role")
    templates = {}
    for role in ROLES:
        entry = raw.get(role)
        if not isinstance(entry, dict) or "{question}" not in str(entry.get("user", "")):
            raise ValueError(f"prompt role {role!r} needs a `user` template containing {{question}}")
        unknown = set(entry) - {"system", "user"}
        if unknown:
            raise ValueError(f"prompt role {role!r} has unknown keys {sorted(unknown)}")
        templates[role] = {k: str(v) for k, v in entry.items()}
    domain = raw.get("domain", "math")
    if domain not in DOMAINS:
        raise ValueError(f"prompt file `domain` must be one of {', '.join(DOMAINS)}; got {domain!r}")
    judge = raw.get("judge")
    if judge is not None:
        if not isinstance(judge, dict) or set(judge) - {"system", "user"}:
            raise ValueError("prompt `judge` takes `system` and `user` only")
        missing = [p for p in ("{question}", "{previous}", "{step}") if p not in str(judge.get("user", ""))]
        if missing:
            raise ValueError(f"prompt `judge.user` needs the placeholders {', '.join(missing)}")
        judge = {k: str(v) for k, v in judge.items()}
    unknown = set(raw) - {"version", "domain", "judge", *ROLES}
    if unknown:
        raise ValueError(f"prompt file has unknown keys {sorted(unknown)}")
    return PromptSet(version=raw["version"], templates=templates, domain=domain, judge=judge)
