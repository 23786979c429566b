"""Whitespace normalisation applied to every caption before tokenisation.

pycocoevalcap's PTB tokenizer joins captions with newlines and splits Java's output on "\\n": a caption holding
\\r, \\f, \\v, \\u2028 or \\u2029 is split by Java into several lines and shifts every later caption to the wrong
image; its METEOR wrapper deadlocks on a newline. Collapsing every Unicode whitespace run to one ASCII space
(and stripping the ends) removes both failure modes and leaves clean captions unchanged.
"""

from __future__ import annotations

import re

# str.split() splits on every character for which str.isspace() is true: \t \n \v \f \r, \x1c-\x1f, \x85,
# NBSP, \u1680, \u2000-\u200a, \u2028, \u2029, \u202f, \u205f, \u3000. Zero-width characters that Java may also
# treat as separators are folded too.
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (any Unicode kind) to one space and strip both ends.

    Example:
        >>> normalize_whitespace("a\\r\\ndog\\u2028runs\\xa0 fast ")
        'a dog runs fast'
    """
    if text.isascii() and text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text  # already normal (printable ASCII has no whitespace but " "): no copy
    return " ".join(_ZERO_WIDTH.sub(" ", text).split())


def is_blank(text: str) -> bool:
    """True when a caption is empty after whitespace normalisation."""
    return normalize_whitespace(text) == ""
