"""Answer extraction for proxy QA, robust to reasoning models (CaptionQA / VQA-style parsing, stricter).

Multiple choice (:func:`extract_choice`), in this order, on the text after the last ``</think>``:

1. after the last answer marker ("Answer:", "final answer is", "\\boxed{...}", "I choose", "the correct
   option is" ...): a letter, an option number or an option's text at the start of what follows;
2. the whole reply read the same way ("B", "(B)", "B. red", "2", "red");
3. anywhere: explicit references ("option B", "(C)"), then standalone capital letters ("so B."); the articles
   and pronouns "A" and "I" before a lower-case word are not letters; several different letters -> go on;
4. anywhere: exactly one option's text (a text inside a longer matching option counts as the longer one);
5. a "cannot answer" phrase when the options include CaptionQA's "Cannot answer from the caption".

Nothing found, several candidates, an empty reply or an unterminated ``<think>`` -> unparsable (``None``):
it is counted and left out of the score, never scored as a wrong answer.

Open answers (:func:`extract_open`, :func:`normalize_answer`): the short answer after the last marker (or the
first line), normalised as the VQA evaluation does (lower case, punctuation, number words to digits, articles
a/an/the dropped) and compared for exact equality with each acceptable answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_THINK_CLOSE = re.compile(r"</think(?:ing)?>|◁/think▷|</reasoning>|<\|end_of_thought\|>", re.I)
_THINK_OPEN = re.compile(r"<think(?:ing)?>|◁think▷|<reasoning>|<\|begin_of_thought\|>", re.I)
_CHANNEL_FINAL = re.compile(r"<\|channel\|>\s*final\s*<\|message\|>", re.I)

_MARKER = re.compile(
    r"(?:\\boxed\{|"
    r"\b(?:final\s+answer|correct\s+(?:answer|option|choice)|best\s+(?:answer|option|choice)|"
    r"the\s+answer|my\s+answer|answer)\s*(?:is|would\s+be|will\s+be|should\s+be|=)?\s*[:：\-]?|"
    r"\b(?:i\s+(?:would\s+|will\s+|'d\s+|'ll\s+)?(?:choose|pick|select|go\s+with))\b\s*:?|"
    r"\b(?:answer|option|choice)\s*[:：])",
    re.I,
)
_LEAD_OPTION_WORD = re.compile(r"^\s*(?:option|choice|letter)\s*", re.I)
_HEAD_LETTER = re.compile(r"^\s*[\(\[]?([A-Za-z])(?:[\)\]](?=\W|$)|[\.:,;](?=\s|$)|(?=\s|$))")
_HEAD_NUMBER = re.compile(r"^\s*[\(\[]?(\d{1,2})(?:[\)\]\.:,;](?=\s|$)|(?=\s|$))")
_EXPLICIT_LETTER = re.compile(r"\b(?:option|choice|letter)\s*[\(\[]?([A-Z])\b[\)\]]?|\(([A-Z])\)")
_EXPLICIT_NUMBER = re.compile(r"\b(?:option|choice)\s*#?\s*(\d{1,2})\b", re.I)
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'’\-])([A-Z])(?![A-Za-z0-9'’\-])")
_CANNOT = re.compile(
    r"\b(?:cannot|can\s*not|can't|unable\s+to)\s+(?:be\s+)?(?:answer|determin|tell|know|infer|say)|"
    r"\bnot\s+(?:enough|sufficient)\s+information\b|\bunanswerable\b|\bno\s+information\b|"
    r"\bdoes\s*(?:not|n't)\s+(?:say|mention|specify|state|describe|provide)|"
    r"\bnot\s+(?:mentioned|specified|stated|described|provided)\b",
    re.I,
)
# Words after which a capital "A" or "I" is an option letter, not an article / pronoun ("A or B", "A is it").
_AFTER_LETTER = frozenset({
    "or", "and", "nor", "is", "was", "seems", "fits", "matches", "because", "since", "but", "as", "would",
    "could", "might", "should", "may", "must", "will", "vs", "versus", "than", "then", "best",
})
_MARKDOWN = re.compile(r"\*\*|__|`|\\text\{|\\mathrm\{|\$")


@dataclass(frozen=True)
class Extraction:
    """What was read from a reply: ``index`` is the chosen *shown* option position (None when unparsable)."""

    index: int | None
    method: str
    answer: str = ""

    @property
    def ok(self) -> bool:
        """True when an answer was found (an option, or a non-empty open answer)."""
        if self.method.startswith("unparsable"):
            return False
        return self.index is not None or (self.method.startswith("open") and bool(self.answer))


def final_text(reply: str | None) -> str | None:
    """The reply without its reasoning: the text after the last closing think tag.

    ``None`` when a ``<think>`` block is opened and never closed (the model ran out of tokens mid-thought).

    Example:
        >>> final_text("<think>A or C? C fits.</think>\\n\\nC")
        'C'
    """
    if reply is None:
        return None
    text = str(reply)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    elif _THINK_OPEN.search(text):
        return None
    finals = list(_CHANNEL_FINAL.finditer(text))
    if finals:
        text = text[finals[-1].end():]
    return text.strip()


def _word_use(letter: str, rest: str) -> bool:
    """True when a capital "A"/"I" starting ``rest``'s context reads as a word ("A red car", "I think")."""
    if letter not in "AI":
        return False
    m = re.match(r"\s*([a-z][a-z']*)", rest)
    return bool(m) and m.group(1) not in _AFTER_LETTER


def _clean(text: str) -> str:
    text = re.sub(r"\\boxed\{([^{}]*)\}", r"Answer: \1", text)
    return _MARKDOWN.sub("", text).replace("}", " ").strip()


# --------------------------------------------------------------------------------------------- normalisation

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
    "twenty": "20",
}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """VQA-style normalisation: lower case; commas inside numbers and periods outside numbers removed;
    apostrophes dropped; other punctuation to spaces; number words (zero..twenty, "none" -> 0, as VQA maps
    it) to digits; articles a/an/the dropped; whitespace collapsed.

    Example:
        >>> normalize_answer("Two dogs, the Brown one's!")
        '2 dogs brown ones'
    """
    t = text.casefold().strip()
    t = re.sub(r"(?<=\d),(?=\d)", "", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)
    t = re.sub(r"['’`]", "", t)
    t = re.sub(r"[^\w\s.]", " ", t)
    t = t.replace("_", " ")
    words = [_NUMBER_WORDS.get(w, w) for w in t.split()]
    return " ".join(w for w in words if w not in _ARTICLES)


def _contains_phrase(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(rf"(?<!\S){re.escape(needle)}(?!\S)", haystack) is not None


# ------------------------------------------------------------------------------------------ multiple choice


def _match_option_text(segment: str, options: Sequence[str], *, whole: bool) -> int | None:
    """Index of the one option whose normalised text equals (``whole``) or occurs in ``segment``."""
    norm = normalize_answer(segment)
    if not norm:
        return None
    opts = [normalize_answer(o) for o in options]
    if whole:
        hits = [i for i, o in enumerate(opts) if o and o == norm]
        if len(hits) != 1:
            hits = [i for i, o in enumerate(opts) if o and norm.startswith(o + " ")]
            hits = _keep_longest(hits, opts)
            # "red or green": another option named after the first one makes the answer ambiguous
            if len(hits) == 1 and any(j != hits[0] and o and o not in opts[hits[0]]
                                      and _contains_phrase(norm[len(opts[hits[0]]):], o)
                                      for j, o in enumerate(opts)):
                return None
        return hits[0] if len(hits) == 1 else None
    hits = _keep_longest([i for i, o in enumerate(opts) if _contains_phrase(norm, o)], opts)
    return hits[0] if len(hits) == 1 else None


def _keep_longest(hits: list[int], opts: list[str]) -> list[int]:
    """Drop a hit whose text lies inside another hit's text ("red" inside "red and white")."""
    return [i for i in hits if not any(j != i and _contains_phrase(opts[j], opts[i]) and opts[j] != opts[i]
                                       for j in hits)]


def _parse_head(segment: str, options: Sequence[str], *, after_marker: bool) -> tuple[int | None, str]:
    """Read an answer at the start of ``segment``: a letter, an option's text or an option number."""
    n = len(options)
    lines = segment.strip().splitlines()
    seg = _LEAD_OPTION_WORD.sub("", lines[0]).strip() if lines else ""
    if not seg:
        return None, ""
    text_hit = _match_option_text(seg.rstrip(" .!"), options, whole=True)
    m = _HEAD_LETTER.match(seg)
    if m and m.group(1).upper() in LETTERS[:n]:
        letter = m.group(1)
        token = m.group(0).strip()
        rest = seg[m.end():].strip()
        punctuated = len(token) > 1  # "(b)", "B.", "C:" -- the letter is marked as a letter
        others = {x.group(1) for x in _STANDALONE.finditer(rest)
                  if not _word_use(x.group(1), rest[x.end():x.end() + 40])} & set(LETTERS[:n])
        if not after_marker and others - {letter.upper()}:
            return None, ""  # "A or B": another option letter follows
        if not rest.strip(" .!") or punctuated:
            return LETTERS.index(letter.upper()), "letter"
        # "B red" is a letter; "A red car" / "I think" are an article / a pronoun (unless no option fits).
        if letter.isupper() and not _word_use(letter, rest) and text_hit is None:
            return LETTERS.index(letter), "letter"
    if text_hit is not None:
        return text_hit, "option-text"
    m = _HEAD_NUMBER.match(seg)
    if m and 1 <= int(m.group(1)) <= n:
        return int(m.group(1)) - 1, "number"
    return None, ""


def extract_choice(reply: str | None, options: Sequence[str], cannot_index: int | None = None) -> Extraction:
    """The shown option a reply chooses (see the module docstring for the rules).

    ``options`` are the options in the order shown; ``cannot_index`` the shown position of the "cannot
    answer" option, if any.

    Example:
        >>> extract_choice("<think>It says red.</think>Answer: (B) red", ["blue", "red", "green"]).index
        1
    """
    text = final_text(reply)
    if text is None:
        return Extraction(None, "unparsable:unterminated-think")
    text = _clean(text)
    if not text:
        return Extraction(None, "unparsable:empty")
    n = len(options)

    markers = list(_MARKER.finditer(text))
    for m in reversed(markers):
        idx, how = _parse_head(text[m.end():], options, after_marker=True)
        if idx is not None:
            return Extraction(idx, f"marker-{how}", text[m.end():].strip().splitlines()[0])

    idx, how = _parse_head(text, options, after_marker=False)
    if idx is not None:
        return Extraction(idx, how, text.splitlines()[0])

    explicit = {(a or b) for a, b in _EXPLICIT_LETTER.findall(text)} & set(LETTERS[:n])
    if len(explicit) == 1:
        return Extraction(LETTERS.index(explicit.pop()), "explicit-letter", text)
    numbers = {int(k) for k in _EXPLICIT_NUMBER.findall(text)} & set(range(1, n + 1))
    if not explicit and len(numbers) == 1:
        return Extraction(numbers.pop() - 1, "explicit-number", text)
    standalone = {m.group(1) for m in _STANDALONE.finditer(text)
                  if not _word_use(m.group(1), text[m.end():m.end() + 40])} & set(LETTERS[:n])
    if not explicit and len(standalone) == 1:
        return Extraction(LETTERS.index(standalone.pop()), "standalone-letter", text)

    norm = normalize_answer(text)
    opts = [normalize_answer(o) for o in options]
    hits = _keep_longest([i for i, o in enumerate(opts) if _contains_phrase(norm, o)], opts)
    if len(hits) == 1:
        return Extraction(hits[0], "option-text-anywhere", text)
    if hits or explicit or standalone or numbers:
        return Extraction(None, "unparsable:ambiguous", text)
    if cannot_index is not None and _CANNOT.search(text):
        return Extraction(cannot_index, "cannot-phrase", text)
    return Extraction(None, "unparsable:no-option-found", text)


# --------------------------------------------------------------------------------------------- open answers

_LEAD_PHRASE = re.compile(r"^\s*(?:the\s+answer\s+is|answer\s+is|it\s+is|it's|they\s+are)\s*:?\s*", re.I)


def extract_open(reply: str | None) -> Extraction:
    """The short answer of a reply to an open question (after the last marker, else its first line).

    Example:
        >>> extract_open("<think>Count them: 1, 2, 3.</think>\\nFinal answer: **three**.").answer
        'three'
    """
    text = final_text(reply)
    if text is None:
        return Extraction(None, "unparsable:unterminated-think")
    text = _clean(text)
    markers = list(_MARKER.finditer(text))
    if markers:
        tail = text[markers[-1].end():].strip()
        if tail:
            text = tail
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    answer = _LEAD_PHRASE.sub("", lines[0]).strip().rstrip(".!").strip() if lines else ""
    if not answer:
        return Extraction(None, "unparsable:empty")
    return Extraction(None, "open", answer)


def open_match(answer: str, gold: Sequence[str]) -> bool:
    """VQA-style exact match: the normalised answer equals one normalised acceptable answer."""
    norm = normalize_answer(answer)
    return bool(norm) and any(norm == normalize_answer(g) for g in gold)
