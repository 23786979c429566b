"""Comparability of metric signatures (the protocol's one rule): two scores are comparable when every
score-moving field of their signatures agrees; the ``capeval:`` version field does not move scores.

Until protocol v2's :func:`capeval.signature.comparable` exists this module parses the sacrebleu-style strings
of the run manifest itself; :func:`differing_fields` is the one place the board asks the question.
"""

from __future__ import annotations

VERSION_FIELD = "capeval"


def parse_signature(signature: str) -> dict[str, str]:
    """``name|key:value|...`` as a dict (the name under ``"name"``).

    Example:
        >>> parse_signature("cider|nrefs:4|sigma:6|capeval:0.1.0")
        {'name': 'cider', 'nrefs': '4', 'sigma': '6', 'capeval': '0.1.0'}
    """
    parts = signature.split("|")
    out = {"name": parts[0]}
    for part in parts[1:]:
        key, _, value = part.partition(":")
        out[key] = value
    return out


def differing_fields(board_signature: str, run_signature: str) -> list[str]:
    """Score-moving fields that differ (``[]`` = comparable), each as ``field (board value vs run value)``.

    Example:
        >>> differing_fields("cider|n:4|sigma:6|capeval:0.1", "cider|n:4|sigma:5|capeval:0.2")
        ['sigma (board 6, run 5)']
    """
    a, b = parse_signature(board_signature), parse_signature(run_signature)
    out = []
    for key in dict.fromkeys([*a, *b]):
        if key == VERSION_FIELD:
            continue
        if a.get(key) != b.get(key):
            out.append(f"{key} (board {a.get(key, 'absent')}, run {b.get(key, 'absent')})")
    return out
