"""Find the final answer in a model response, and the gold answer in a dataset record, as strings.

This module is for string work only: dropping ``<think>`` reasoning, rewriting spellings math-verify's
parser does not take (``normalise_answer``, ``prepare_response``), our own fallback answer rules
(``\\boxed{}``, "The answer is ...", ``#### ...``, a bare answer, or, as a last resort, the last number),
recognising text golds (a multiple-choice letter or a word) and finding and comparing the text answer a
response gives for them, and pulling the gold answer out of a GSM8K or MATH record. It is pure and cheap
(regexes and a brace matcher, no sympy) so stage code can call it anywhere.

It is not for deciding whether a mathematical answer is right, nor for the main answer extraction:
``math.py`` runs math-verify's own extraction on every response first and uses ``extract_answer`` only
when the library finds nothing; comparing answers, and the timeouts that needs, live there too.
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


# --- spellings math-verify's parser does not take ------------------------------------------------------

# A thin space (or "{,}", "\ ") between digit groups is a thousands separator ("1\,000\,000"); "~" is a
# non-breaking space; e-notation ("1.5e3") becomes a power of ten; a Unicode minus is a minus.
_DIGIT_GROUP = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\ )(?=\d{3}(?!\d))")
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?!\w)")
# Plain spaces as thousands separators ("1 000 000") only in the strict form: a first group of one to three
# digits not glued to another number, then groups of exactly three. Inside LaTeX math-verify reads
# "1 000 000" as the product 1*0*0 (so it would equal 0), hence the rewrite before any parsing.
_SPACE_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?!\d|,\d| \d)")
# "10\%" and "40%" do not parse in math-verify 0.9's LaTeX parser (they stay strings); a percentage
# compares as its number, as graders of these datasets do.
_LATEX_PERCENT = re.compile(r"(?<=[\d}])\s*(?:\\?%|\\(?:text|mbox|mathrm)\{\s*percent\s*\}|percent\b)")
# "\boxed 6" and "\boxed {6}" are boxed answers too, but math-verify only finds "\boxed{...}".
_BOX_SPACE_BRACE = re.compile(r"\\(boxed|fbox)\s+\{")
_BOX_TOKEN = re.compile(r"\\(boxed|fbox)\s+([^\s${}\\]+?)([.,;]?)(?=\s|\$|$)")


def normalise_answer(text: str) -> str:
    """``text`` with the spellings above rewritten; anything else is left for math-verify."""
    text = text.replace("\u2212", "-").replace("~", " ")
    previous = None
    while previous != text:  # groups overlap ("1\\,000\\,000"), so repeat until nothing changes
        previous, text = text, _DIGIT_GROUP.sub("", text)
    text = _SPACE_GROUPED.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _LATEX_PERCENT.sub("", text)
    return _E_NOTATION.sub(r"\1\\times 10^{\2}", text).strip()


def prepare_response(text: str) -> str:
    """The part of a response that may hold its answer, in spellings math-verify's extraction takes.

    Drops ``<think>`` reasoning (``strip_reasoning``), applies ``normalise_answer``, writes the token
    form of a box ("\\boxed 6", "\\boxed {6}") as "\\boxed{6}", and keeps only the final list of boxes
    boxed (``keep_final_boxes``).
    """
    body = normalise_answer(strip_reasoning(text))
    body = _BOX_SPACE_BRACE.sub(r"\\\1{", body)
    return keep_final_boxes(_BOX_TOKEN.sub(r"\\\1{\2}\3", body))


# What may stand between two boxes of one answer list: commas, "and"/"or", "x =" before the next box,
# spacing and math delimiters ("x = \boxed{1} or x = \boxed{2}", "\boxed{1}, \boxed{2} and \boxed{3}"),
# and a short \text{} that ends in "and", "or" or a comma ("\boxed{(3, 3)} \text{ for part (a) and } ...").
_LIST_GAP = re.compile(
    r"^(?:\s|\$|,|;|&|\\[,;:! ]|\\q?quad|\\\(|\\\)|\\text\{\s*(?:and|or|,)?\s*\}|\b(?:and|or)\b"
    r"|\\text\{[^{}$]{0,40}?(?:\band|\bor|,)\s*\}"
    r"|[A-Za-z](?:_\{?\w+\}?)?\s*=)*$"
)


_LIST_GAP_MAX_CHARS = 70  # math-verify's own limit for joining boxes


def _boxes(text: str) -> list[tuple[int, int]]:
    """(start, end) of every complete ``\\boxed{...}``/``\\fbox{...}`` in ``text``, end exclusive."""
    spans: list[tuple[int, int]] = []
    for m in _BOX_COMMAND.finditer(text):
        if m.end() < len(text) and text[m.end()] == "{":
            close = _match_brace(text, m.end())
            if close is not None:
                spans.append((m.start(), close + 1))
    return spans


def keep_final_boxes(body: str) -> str:
    """``body`` with every box unboxed except the last one and the boxes listed right before it.

    math-verify joins the last boxes into one answer when fewer than 70 characters with a comma or
    "and"/"or" separate them; so "earlier \\boxed{4}, finally \\boxed{5}" would answer {4, 5}. Here only
    a gap made of separators (``_LIST_GAP``) keeps an earlier box in the answer: "\\boxed{1} and
    \\boxed{2}" is the list 1, 2; a first guess before "Actually," is dropped. Boxes are unboxed to
    their content (which stays in the text), not deleted.
    """
    while True:  # a box nested in an unboxed one comes out as a box: repeat until none is left to unbox
        shorter = _unbox_earlier(body)
        if shorter == body:
            return body
        body = shorter


def _unbox_earlier(body: str) -> str:
    spans = _boxes(body)
    keep = len(spans) - 1
    while keep > 0:
        gap = body[spans[keep - 1][1] : spans[keep][0]]
        if len(gap) > _LIST_GAP_MAX_CHARS or not _LIST_GAP.match(gap):
            break
        keep -= 1
    if keep <= 0:
        return body
    out: list[str] = []
    position = 0
    for start, end in spans[:keep]:
        if start < position:
            continue  # a box nested in an earlier one was unboxed with it
        open_brace = body.index("{", start)
        out.append(body[position:start])
        out.append(body[open_brace + 1 : end - 1])
        position = end
    out.append(body[position:])
    return "".join(out)


_LAST_LINE_MAX_CHARS = 120
# Words of prose: two letters or more, not a LaTeX command and not inside braces of one ("\text{cm}").
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z{])[A-Za-z]{2,}(?![A-Za-z]*\})")


_NUMBER_LIST = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:\s*,\s*-?(?:\d+\.?\d*|\.\d+))+\.?")


_DECIMAL_COMMA = re.compile(r"-?\d+,\d{1,2}")


def bare_line(body: str) -> str | None:
    """The last line of ``body`` if it is a bare mathematical answer written without ``$`` delimiters.

    Bare means: at most ``_LAST_LINE_MAX_CHARS`` characters, a LaTeX command, a relation or an operator in
    it, no ``$``/``\\(``/``\\boxed`` (those math-verify finds itself) and no word of prose once a
    trailing unit is dropped ("x \\geq 5", "y = 2x + 1", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", "(1, 2)").
    math-verify's extraction only sees a number inside such a line ("5" of "x \\geq 5"), so the whole line
    is what the response commits to. Returns the line cleaned of a trailing period, else ``None``.
    """
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1]
    if len(line) > _LAST_LINE_MAX_CHARS or re.search(r"\$|\\\(|\\\[|\\boxed|\\fbox", line):
        return None
    # A list of plain numbers ("1, 2, 3") counts only as a whole one-line response: at the end of longer
    # working it may just as well be a list of intermediate values. "1000,99" is a decimal comma, not a list.
    number_list = len(lines) == 1 and _NUMBER_LIST.fullmatch(line) is not None and not _DECIMAL_COMMA.fullmatch(line)
    if not number_list and not re.search(r"\\[A-Za-z]|[=<>^+*/(\[]|\d\s*-|-\s*\d", line):
        return None
    cleaned = _clean_span(line)
    if cleaned is None or _PROSE_WORD.search(cleaned):
        return None
    return cleaned


def final_hash_answer(body: str) -> str | None:
    """The answer on a closing ``#### X`` line (GSM8K's final-answer marker, as the last non-empty line of
    ``body``), cleaned like any marked answer; else ``None``."""
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("####"):
        return None
    return _clean_span(lines[-1][len("####") :])


_PLAIN_NUMBER = re.compile(r"^[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


def is_plain_number(gold: str) -> bool:
    """Whether ``gold`` is a plain integer or decimal ("42", "-3.5", "1,234"): the golds for which the last
    number in a response may stand in for its answer."""
    return bool(_PLAIN_NUMBER.match(normalise_answer(gold)))


# --- text answers: multiple-choice letters and words ---------------------------------------------------------

TEXT_KINDS: tuple[str, ...] = ("choice", "word")


@dataclass(frozen=True)
class TextGold:
    """A gold answer compared as text, not as mathematics: a choice letter A-E ("C", "(C)",
    "\\text{(C)}") or a word ("even", "\\text{Monday}", "no solution"). ``text`` is the letter in upper
    case or the word in lower case with single spaces."""

    kind: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in TEXT_KINDS:
            raise ValueError(f"unknown text gold kind {self.kind!r}; known: {', '.join(TEXT_KINDS)}")


_TEXT_COMMAND = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|textup|mathrm|mathbf|mathit|mathsf|mathtt|mathbb|mbox|emph)"
    r"\s*\{([^{}]*)\}"
)
_MATH_DELIMITERS = re.compile(r"\$|\\\(|\\\)|\\\[|\\\]|\*\*")
# Function and constant names that are mathematics even when a gold spells them without a backslash.
_MATH_WORDS = frozenset({"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "lim", "pi", "inf", "infty"})


def _unwrap_text(text: str) -> tuple[str, bool]:
    """``text`` without text commands, math delimiters and markdown bold; and whether a text command was
    there (a word written in ``\\text{}`` is text even when it is short)."""
    wrapped = False
    previous = None
    while previous != text:
        previous = text
        text = _TEXT_COMMAND.sub(r"\1", text)
        wrapped = wrapped or previous != text
    text = _MATH_DELIMITERS.sub("", text)
    return text.strip().strip("{}").strip(), wrapped


_CHOICE_GOLD = re.compile(r"^(?:\(\s*([A-Ea-e])\s*\)|([A-E]))\.?$")
_WORD_GOLD = re.compile(r"^[A-Za-z]+(?:[ '-][A-Za-z]+)*$")


def text_gold(gold: str) -> TextGold | None:
    """``gold`` as a ``TextGold`` if it is a choice letter or a word, else ``None`` (compare as maths).

    A single upper-case letter A-E (or any of a-e in parentheses), bare or in ``\\text{}``/``\\mathrm{}``/
    ``\\textbf{}``/``$...$``, is a choice. Letters only (spaces, hyphens allowed) make a word if they were
    written in a text command or have three letters or more; one or two bare letters ("x", "ab") stay
    mathematics, as do function names such as "sin".
    """
    inner, wrapped = _unwrap_text(gold.strip())
    choice = _CHOICE_GOLD.match(inner)
    if choice is not None:
        return TextGold("choice", (choice.group(1) or choice.group(2)).upper())
    if "\\" in inner or not _WORD_GOLD.match(inner):
        return None
    word = " ".join(inner.lower().split())
    if word in _MATH_WORDS or not (wrapped or len(word.replace(" ", "")) >= 3):
        return None
    return TextGold("word", word)


# "The answer is C", "Final answer: (C)", "the correct option is C", "Answer: **even**". Unlike the math
# answer phrase, some words may sit between the marker and "is" ("the final answer to part (a) is C").
_TEXT_ANSWER_PHRASE = re.compile(
    r"\b(?:answer|option|choice)\b(?:[^\n.:]{0,60}?\b(?:is|be)\b\s*:?|\s*\**\s*:)[\s*]*(?P<ans>[^\n]*)",
    re.IGNORECASE,
)
_CHOICE_ANSWER = re.compile(r"^(?:option\s+|choice\s+)?(?:\(\s*([A-Ea-e])\s*\)|([A-Ea-e]))(?P<rest>.*)$", re.I | re.S)
# After a choice letter: nothing or punctuation ("C.", "C) 12", "C: 12"), or, after a space, what a choice
# is followed by ("C (12)", "C $12$", "C since ...") but not a word ("A triangle", "A total of 12": an
# article). In parentheses a word may follow ("(C) is the one"). Never an operator: "E = mc^2" is an
# equation and "(C) + 1" an expression, not a choice.
_CHOICE_REST_OK = re.compile(r"^(?:$|[.,:;!)]|\s+(?:[(\d\\-]|since\b|because\b|as\b|which\b|--|\u2014))", re.IGNORECASE)
_CHOICE_REST_PAREN_OK = re.compile(r"^(?:$|[.,:;!)]|\s+(?![\s=<>+\-*/^]))")
_CHOICE_REST_WHOLE = re.compile(r"^[\s.,:;!)]*$")
_WORD_END = re.compile(r"[.,;:!?(]|\s(?:since|because|as|for|so)\b", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:the|an?)\s+", re.IGNORECASE)
_TEXT_LAST_LINE_MAX_CHARS = 40


def _choice_of(answer: str, *, whole: bool) -> str | None:
    inner, _ = _unwrap_text(answer)
    match = _CHOICE_ANSWER.match(inner)
    if match is None:
        return None
    rest = match.group("rest")
    if whole and not _CHOICE_REST_WHOLE.match(rest):
        return None
    if not (_CHOICE_REST_OK if match.group(1) is None else _CHOICE_REST_PAREN_OK).match(rest):
        return None
    if match.group(1) is None and match.group(2).islower() and rest.strip(" .,;:!"):
        return None  # a bare lower-case letter followed by more is an article or a variable
    return (match.group(1) or match.group(2)).upper()


def _word_of(answer: str, *, whole: bool) -> str:
    inner, _ = _unwrap_text(answer)
    if whole:
        inner = inner.rstrip(" .!")
    else:
        end = _WORD_END.search(inner)
        if end is not None:
            inner = inner[: end.start()]
    return _ARTICLE.sub("", " ".join(inner.lower().split()))


def find_text_answer(body: str) -> Extraction:
    """The answer a response (already through ``prepare_response``) gives to a text question.

    First hit wins: the last ``\\boxed{}``; the last "answer ... is X" / "answer: X" / "option X"; the last
    line if it is short (up to ``_TEXT_LAST_LINE_MAX_CHARS`` characters, such as "**(C)**"). A letter or
    word elsewhere in the text is never taken: "point C" in the reasoning is not an answer.
    """
    if not body:
        return _NONE
    boxed = last_boxed(body)
    if boxed is not None:
        return Extraction(answer=boxed, method="boxed")
    for match in reversed(list(_TEXT_ANSWER_PHRASE.finditer(body))):
        answer = match.group("ans").strip().strip("*").strip()
        if answer:
            return Extraction(answer=answer, method="answer_phrase")
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if lines and len(lines[-1]) <= _TEXT_LAST_LINE_MAX_CHARS:
        return Extraction(answer=lines[-1], method="bare")
    return _NONE


def text_matches(answer: Extraction, gold: TextGold) -> bool:
    """Whether ``answer`` (from ``find_text_answer``) gives ``gold``: the same choice letter (any case, in
    ``\\text{}``, ``\\mathrm{}``, ``\\textbf{}``, ``$...$`` or parentheses) or the same word (any case,
    ignoring a leading article). A boxed or phrase answer may go on after the letter ("(C) 12") or the word
    ("even, because ..."); a bare last line must be the letter or word alone. A number never matches."""
    if answer.answer is None:
        return False
    whole = answer.method == "bare"
    if gold.kind == "choice":
        return _choice_of(answer.answer, whole=whole) == gold.text
    return _word_of(answer.answer, whole=whole) == gold.text


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
