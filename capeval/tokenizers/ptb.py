"""PTB tokenisation as pycocoevalcap does it: Stanford CoreNLP 3.4.1's PTBTokenizer, lower-cased, punctuation removed.

Differences from ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer`` that never change a token of a clean
caption: every unique caption is tokenised once per run (one JVM for all captioners and the references), the
temporary file goes to the system temp folder rather than into site-packages, whitespace is normalised before
(see :mod:`capeval.text`), and the output's line count is checked so a caption can never shift to another image.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable

from capeval.errors import CapevalError
from capeval.java import java_executable, java_problem, pycocoevalcap_jar
from capeval.text import normalize_whitespace

CORENLP_JAR = "tokenizer/stanford-corenlp-3.4.1.jar"

# pycocoevalcap's list, verbatim: tokens dropped after tokenisation.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

SIGNATURE = "ptb"


def _strip_punctuation(line: str) -> str:
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def tokenize_ptb(texts: Iterable[str], timeout: float | None = 3600) -> dict[str, str]:
    """Tokenise captions with the PTB tokenizer; returns ``{caption: tokenised caption}`` for each unique caption.

    Blank captions map to ``""`` without reaching Java.

    Example:
        >>> tokenize_ptb(["A man, riding a horse."])["A man, riding a horse."]
        'a man riding a horse'
    """
    unique = list(dict.fromkeys(normalize_whitespace(t) for t in texts))
    result: dict[str, str] = {"": ""}
    todo = [t for t in unique if t]
    if not todo:
        return result
    problem = java_problem()
    if problem:
        raise CapevalError(f"PTB tokenizer needs Java: {problem}")
    jar = pycocoevalcap_jar(CORENLP_JAR)
    fd, path = tempfile.mkstemp(prefix="capeval-ptb-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(todo))
        cmd = [java_executable(), "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", path]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace")[-500:]
        raise CapevalError(f"PTB tokenizer failed (exit {proc.returncode}): {detail}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "" and len(lines) == len(todo) + 1:
        lines.pop()
    if len(lines) != len(todo):
        raise CapevalError(
            f"PTB tokenizer returned {len(lines)} lines for {len(todo)} captions; refusing to misalign"
        )
    result.update(zip(todo, (_strip_punctuation(line) for line in lines), strict=True))
    return result
