"""Find the final answer in a model response, and the gold answer in a dataset record, as strings.

This module is for string work only: dropping ``<think>`` reasoning, locating the answer a response
commits to (``\\boxed{}``, "The answer is ...", ``#### ...``, a bare answer, or, as a last resort, the
last number) and pulling the gold answer out of a GSM8K or MATH record. It is pure and cheap (regexes
and a brace matcher, no sympy) so stage code can call it anywhere. It is not for deciding whether an
answer is right: comparing answers, and the timeouts that needs, live in ``math.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXTRACTION_METHODS: tuple[str, ...] = ("boxed", "answer_phrase", "gsm8k_hash", "last_number", "bare", "none")


@dataclass(frozen=True)
class Extraction:
    """The answer string a response commits to, and which rule found it (one of ``EXTRACTION_METHODS``).

    ``answer`` is ``None`` exactly when ``method == "none"``.
    """

    answer: str | None
    method: str

    def __post_init__(self) -> None:
        if self.method not in EXTRACTION_METHODS:
            raise ValueError(f"unknown extraction method {self.method!r}; known: {', '.join(EXTRACTION_METHODS)}")
        if (self.answer is None) != (self.method == "none"):
            raise ValueError(f"extraction method {self.method!r} is inconsistent with answer {self.answer!r}")


_NONE = Extraction(answer=None, method="none")

# --- reasoning -----------------------------------------------------------------------------------------

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


def strip_reasoning(text: str) -> str:
    """Return ``text`` without its ``<think>...</think>`` reasoning, stripped of surrounding whitespace.

    A closing ``</think>`` with no opening tag (chat templates that put ``<think>`` in the prompt) drops
    everything before it. An unclosed ``<think>`` drops everything from it on: the model never finished
    thinking, so nothing in there is an answer it committed to (a leading unclosed block gives ``""``).
    """
    out = _THINK_BLOCK.sub("", text)
    lower = out.lower()
    close = lower.rfind(_THINK_CLOSE)
    if close != -1:
        out = out[close + len(_THINK_CLOSE) :]
        lower = out.lower()
    opening = lower.find(_THINK_OPEN)
    if opening != -1:
        out = out[:opening]
    return out.strip()


# --- \boxed{...} -----------------------------------------------------------------------------------------

# After the command we either brace-match a "{" or take the next token ("\boxed 5", a form some models
# emit and math graders accept).
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")


def _match_brace(text: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_idx``, or ``None`` if it is never closed.

    Escaped braces (``\\{``, ``\\}``) are literal characters in LaTeX, not grouping, so they are skipped;
    otherwise ``\\boxed{\\{1,2\\}}`` would be cut short.
    """
    depth = 0
    i = open_idx
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # skip the escaped character (also handles "\\\\", a LaTeX line break)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete, non-empty ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, else ``None``.

    Braces are matched, so ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``. A box that is never closed
    (output cut off mid-answer) is skipped rather than returned half-written.
    """
    found: str | None = None
    for m in _BOX_COMMAND.finditer(text):
        start = m.end()
        if start < len(text) and text[start] == "{":
            end = _match_brace(text, start)
            if end is None:
                continue
            content = text[start + 1 : end].strip()
        else:
            token = re.match(r"[^\s$]+", text[start:])
            if token is None:
                continue
            content = token.group(0).rstrip(".,;")
        if content:
            found = content
    return found


# --- cleaning an answer span ------------------------------------------------------------------------

# A plain number: thousands-separated (exactly three digits per group, so "1,2,3" is not a number),
# or plain digits, with optional decimals. Leading sign allows ASCII and Unicode minus.
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
# A span that *starts* with a number, optionally as currency, optionally a fraction or percentage.
_LEADING_NUMBER = re.compile(
    rf"^(?:\\?\$\s*)?(?P<sign>[-\u2212])?(?P<num>(?:{_NUM})(?:/\d+)?)(?:\s*\\?%)?(?P<rest>.*)$", re.DOTALL
)
# What may follow a leading number for it to be the whole answer: nothing, closing math delimiters or
# sentence punctuation (then only words: "42, since ..."), or a word of two letters or more ("18 dollars";
# "2 x" is algebra). Anything else ("2^{10}", "3 + 4i", "2 \sqrt{3}", "3, 5") means the number is only
# the start of an expression or a list, so the span is kept whole.
_NUMBER_TAIL_OK = re.compile(r"^(?:\$|\\\)|\\\])*\s*(?:[.,;:!](?:\s+[A-Za-z].*)?|\s+[A-Za-z]{2,}.*)?$", re.DOTALL)
_MATH_SPANS: tuple[tuple[str, str], ...] = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def _normalise_number(sign: str | None, num: str) -> str:
    # Thousands separators only confuse the math parser ("1,234" can read as a set {1, 234}).
    return ("-" if sign else "") + num.replace(",", "")


def _clean_span(span: str) -> str | None:
    """Reduce the text after an answer marker to the answer itself, or ``None`` if nothing is left."""
    text = span.strip().strip("*").strip()  # markdown bold around "**Final answer:** 42"
    text = text.lstrip(":").strip()
    if not text:
        return None
    number = _LEADING_NUMBER.match(text)
    if number is not None and _NUMBER_TAIL_OK.match(number.group("rest")):
        return _normalise_number(number.group("sign"), number.group("num"))
    for opening, closing in _MATH_SPANS:
        if text.startswith(opening):
            end = text.find(closing, len(opening))
            if end != -1:
                inner = text[len(opening) : end].strip()
                return inner or None
            text = text[len(opening) :].strip()  # unclosed delimiter: drop it, keep the content
            break
    text = text.rstrip().rstrip(".").rstrip()
    return text or None


# --- the other answer markers ---------------------------------------------------------------------------

# "The answer is X", "Final answer: X", "**Final Answer**: X", "answer: X". `\s*` after the marker may
# cross newlines so "Final answer:\n\n42" finds 42; the answer itself is the rest of that line.
_ANSWER_PHRASE = re.compile(r"\banswer\s*\**\s*(?:is\b\s*:?|:)[\s*]*(?P<ans>[^\n]*)", re.IGNORECASE)
_GSM8K_HASH = re.compile(r"####\s*(?P<ans>[^\n]*)")
_LAST_NUMBER = re.compile(rf"(?<![\w.,])(?P<sign>[-\u2212])?(?<![\w.,])(?P<num>{_NUM})(?!\d)")
# A whole response counts as a bare answer only if it is short, one line, has a digit or a LaTeX command,
# and has at most one word outside LaTeX commands ("18 dollars" yes, "x = 3 or 4 ok" no: that is prose).
# A \boxed in it that last_boxed did not accept is unclosed, i.e. cut off, so it is no bare answer either.
_BARE_MAX_CHARS = 50
_BARE_MAX_WORDS = 1
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


def _last_marked(pattern: re.Pattern[str], text: str) -> str | None:
    """Cleaned answer after the last occurrence of ``pattern`` that leaves a non-empty answer."""
    for m in reversed(list(pattern.finditer(text))):
        answer = _clean_span(m.group("ans"))
        if answer is not None:
            return answer
    return None


def _bare(text: str) -> str | None:
    if not text or "\n" in text or len(text) > _BARE_MAX_CHARS:
        return None
    if not re.search(r"[\d\\]", text) or _BOX_COMMAND.search(text):
        return None
    if len(_WORD.findall(text)) > _BARE_MAX_WORDS:
        return None
    return _clean_span(text)


def _last_number(text: str) -> str | None:
    matches = list(_LAST_NUMBER.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    return _normalise_number(last.group("sign"), last.group("num"))


def extract_answer(text: str, *, last_number_fallback: bool = True) -> Extraction:
    """Find the answer a response commits to, looking only after any ``<think>`` reasoning.

    Rules, first hit wins: the last brace-matched ``\\boxed{}``/``\\fbox{}``; the last "The answer is X"
    / "Final answer: X" / "answer: X"; the last ``#### X``; the whole response if it is a short bare
    answer ("42", "\\frac{1}{2}", "x=3"); the last number in the text, if ``last_number_fallback``.
    Phrase, hash and bare answers are cleaned: surrounding ``$...$`` removed, a trailing period dropped,
    and a leading number followed by words ("18 dollars.") reduced to the number.
    """
    body = strip_reasoning(text)
    if not body:
        return _NONE
    boxed = last_boxed(body)
    if boxed is not None:
        return Extraction(answer=boxed, method="boxed")
    phrase = _last_marked(_ANSWER_PHRASE, body)
    if phrase is not None:
        return Extraction(answer=phrase, method="answer_phrase")
    hashed = _last_marked(_GSM8K_HASH, body)
    if hashed is not None:
        return Extraction(answer=hashed, method="gsm8k_hash")
    bare = _bare(body)
    if bare is not None:
        return Extraction(answer=bare, method="bare")
    if last_number_fallback:
        number = _last_number(body)
        if number is not None:
            return Extraction(answer=number, method="last_number")
    return _NONE


_AIME_KEY = re.compile(r"^0*(\d{1,3})$")
_AMC_INTEGER = re.compile(r"^(-?\d+)\.0*$")


def parse_gold(raw: str, source: str) -> str | None:
    """The gold answer string in a dataset record, or ``None`` if there is nothing usable.

    ``source`` says how the record writes its key:

    - ``gsm8k``: the text after the last ``####``, thousands separators removed (``None`` without ``####``).
    - ``math`` / ``math500``: the content of the last ``\\boxed{}`` if there is one (a full solution), else
      the whole text (the ``answer`` field).
    - ``aime`` / ``aime24`` / ``aime25``: an integer 0-999, often zero-padded ("025" is 25); anything
      else is ``None``, because an AIME key that is not such an integer is a broken record.
    - ``amc`` / ``amc23``: a number that datasets often store as a float ("27.0" is 27); an integral
      float becomes the integer, any other text is kept as it is.
    - anything else (``synthetic``, user pools): the text stripped.

    Only the form is handled here; whether math-verify can parse the result is ``check_golds``' job.
    """
    text = raw.strip()
    if source == "gsm8k":
        idx = text.rfind("####")
        if idx == -1:
            return None
        answer = text[idx + len("####") :].replace(",", "").strip()
    elif source in ("math", "math500"):
        boxed = last_boxed(text)
        answer = boxed if boxed is not None else text
    elif source in ("aime", "aime24", "aime25"):
        match = _AIME_KEY.match(text)
        return str(int(match.group(1))) if match else None
    elif source in ("amc", "amc23"):
        match = _AMC_INTEGER.match(text)
        answer = str(int(match.group(1))) if match else text
    else:
        answer = text
    return answer or None
