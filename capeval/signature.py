"""Signatures as data, and the one comparability rule every consumer uses (check, report merge, board).

Two results are comparable when their references have the same sha256 and every score-moving signature field
of each metric they share is equal. Score-moving means every field but capeval's own version (which a
release bumps without moving scores; a change in a metric's arithmetic bumps that metric's ``v`` field).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOT_SCORE_MOVING = frozenset({"capeval"})


def parse_signature(signature: str) -> dict[str, str]:
    """A signature string as ``{field: value}`` (``metric`` holds its first part).

    Example:
        >>> parse_signature("cider|nrefs:4|sigma:6|capeval:0.2.0")
        {'metric': 'cider', 'nrefs': '4', 'sigma': '6', 'capeval': '0.2.0'}
    """
    name, *parts = signature.split("|")
    out = {"metric": name}
    for part in parts:
        key, _, value = part.partition(":")
        out[key] = value
    return out


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def score_moving(signature: Mapping[str, Any] | str) -> dict[str, str]:
    """The score-moving fields of a signature (string or JSON form), values as their signature text."""
    fields = parse_signature(signature) if isinstance(signature, str) else dict(signature)
    return {k: _as_text(v) for k, v in fields.items() if k not in NOT_SCORE_MOVING}


def differing_fields(a: Mapping[str, Any] | str, b: Mapping[str, Any] | str) -> list[str]:
    """Score-moving fields whose values differ, as ``field (a vs b)``; empty when comparable.

    Example:
        >>> differing_fields("cider|sigma:6|capeval:0.1.0", "cider|sigma:5|capeval:0.2.0")
        ['sigma (6 vs 5)']
    """
    fa, fb = score_moving(a), score_moving(b)
    out = []
    for key in list(dict.fromkeys([*fa, *fb])):
        va, vb = fa.get(key, "(absent)"), fb.get(key, "(absent)")
        if va != vb:
            out.append(f"{key} ({va} vs {vb})")
    return out


def run_signature(run: Any, output: str) -> Mapping[str, Any] | str:
    """An output's signature in a run: its JSON form when the run has it, else the string."""
    js = run.manifest.get("signatures_json", {}).get(output)
    return js if js else run.signatures.get(output, "")


def run_differences(a: Any, b: Any, output: str) -> list[str]:
    """Differing score-moving fields of ``output`` between runs ``a`` and ``b``, by both the JSON and the
    string form of the signatures (a run whose two forms disagree is compared on each)."""
    out = differing_fields(run_signature(a, output), run_signature(b, output))
    for d in differing_fields(a.signatures.get(output, ""), b.signatures.get(output, "")):
        if d not in out:
            out.append(d)
    return out


def comparability(refs_sha_a: str, refs_sha_b: str, sigs_a: Mapping[str, Any], sigs_b: Mapping[str, Any],
                  outputs: list[str]) -> list[str]:
    """Every reason two results can't be compared (empty when they can): references, then per output the
    differing score-moving fields."""
    problems = []
    if refs_sha_a != refs_sha_b:
        problems.append(f"references differ (sha256 {refs_sha_a[:12]} vs {refs_sha_b[:12]})")
    for out in outputs:
        diff = differing_fields(sigs_a.get(out, ""), sigs_b.get(out, ""))
        if diff:
            problems.append(f"{out}: {', '.join(diff)}")
    return problems
