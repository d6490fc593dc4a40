"""Prompt templates: load a YAML prompt set and render chat conversations from questions.

A prompt set has a ``version`` that every generated row records, and one template per role (``student``
for grading and evaluation, ``teacher`` for solutions). This module only renders text; it does not call
models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adacot.llm.base import Conversation

ROLES = ("student", "teacher")


@dataclass(frozen=True)
class PromptSet:
    """Templates per role, with the version written into output rows."""

    version: str
    templates: dict[str, dict[str, str]]

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
    return PromptSet(version=raw["version"], templates=templates)
