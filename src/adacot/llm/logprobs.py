"""Next-token probability arithmetic: the yes-share a generative judge's first token gives.

A generative PRM judge is asked "is this step correct? Yes or No" and its answer is read from the
probabilities of its verdict token, not from its text: the first generated token (per-step judge) or
the token at each verdict slot of a single-pass prompt (the LM head's rows for yes and no). Every backend
(vLLM's logprobs, transformers' logits, a server's ``top_logprobs``) hands the numbers to the functions
here, so one reading holds for local and served judges and for both judge modes. This module does no
I/O and loads no model; it does not decide what a score means for a question's level (``levels.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

YES_WORD = "yes"
NO_WORD = "no"
# The spellings whose single tokens a local judge reads at a verdict position (tokenizers split the word
# differently; a spelling that is not one token in a vocabulary is skipped there).
YES_SPELLINGS = ("Yes", " Yes", "yes", " yes", "YES")
NO_SPELLINGS = ("No", " No", "no", " no", "NO")


def single_token_ids(tokenizer: Any, spellings: Sequence[str]) -> list[int]:
    """The token ids of those ``spellings`` that are one token in ``tokenizer``'s vocabulary, sorted."""
    ids = set()
    for spelling in spellings:
        tokens = tokenizer.encode(spelling, add_special_tokens=False)
        if len(tokens) == 1:
            ids.add(int(tokens[0]))
    return sorted(ids)


def yes_share(p_yes: float, p_no: float) -> float:
    """P(Yes) / (P(Yes) + P(No)); 0.5 (undecided) when the model puts no weight on either.

    A non-finite probability is passed on as NaN rather than hidden in 0.5: the caller turns it into an
    error verdict (``prm.score_failures``), so it never silently places a question on a level.
    """
    if not (math.isfinite(p_yes) and math.isfinite(p_no)):
        return math.nan
    total = p_yes + p_no
    return p_yes / total if total > 0 else 0.5


def yes_share_of_top(pairs: Iterable[Sequence[Any]]) -> float:
    """``yes_share`` of a first-token distribution given as [(token, logprob), ...]: every spelling counts.

    " Yes", "yes" and "YES" all count as yes (tokenizers split the word differently); a logprob of
    -inf is a probability of 0; a NaN logprob makes the share NaN.
    """
    p_yes = p_no = 0.0
    for token, logprob in pairs:
        word = str(token).strip().lower()
        if word == YES_WORD:
            p_yes += math.exp(float(logprob))
        elif word == NO_WORD:
            p_no += math.exp(float(logprob))
    return yes_share(p_yes, p_no)
