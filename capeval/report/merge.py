"""Combining several run directories for one report: comparable runs are merged, the others kept apart.

Rule (documented in reports/README.md): runs with identical references (same sample ids and texts) and the
same signature for every metric they share form one *group*; a group's captioners are merged into one
leaderboard, one set of pairwise tests and one sample browser. A captioner name used by more than one run of a
group is prefixed with its run name (``run_a/base``, ``run_b/base``). Runs that differ in references or in a
shared metric's signature can't be compared on the same images; each such run gets its own section.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from capeval.errors import CapevalError
from capeval.rundir import Run
from capeval.signature import run_differences


@dataclass
class RunGroup:
    """Runs shown together, and the merged run they make (the run itself when the group has one run)."""

    names: list[str]
    runs: list[Run]
    merged: Run
    renamed: dict[tuple[str, str], str] = field(default_factory=dict)  # (run name, captioner) -> shown name
    reasons: list[str] = field(default_factory=list)  # why runs were not merged into this group


def run_names(runs: Sequence[Run]) -> list[str]:
    """Distinct display names: the folder name, with parent folders added (or a number) to tell equal ones apart."""
    names = [r.path.name or str(r.path) for r in runs]
    for depth in range(2, 5):
        counts = Counter(names)
        if len(counts) == len(names):
            return names
        names = [
            "/".join(r.path.parts[-depth:]) if counts[n] > 1 else n for r, n in zip(runs, names, strict=True)
        ]
    counts = Counter(names)
    seen: Counter[str] = Counter()
    out = []
    for n in names:
        seen[n] += 1
        out.append(f"{n}#{seen[n]}" if counts[n] > 1 else n)
    return out


def incompatibility(group: RunGroup, run: Run, name: str) -> str | None:
    """Why ``run`` can't join ``group`` (None when it can)."""
    first = group.runs[0]
    if list(run.references) != list(first.references):
        return f"{name} and {group.names[0]} have different sample ids"
    if run.references != first.references:
        return f"{name} and {group.names[0]} have different references"
    for other_name, other in zip(group.names, group.runs, strict=True):
        for metric, sig in run.signatures.items():
            if metric not in other.signatures:
                continue
            diff = run_differences(other, run, metric)  # the one comparability rule
            if diff:
                return (f"{name} and {other_name} computed {metric} differently ({', '.join(diff)}: "
                        f"{sig} vs {other.signatures[metric]})")
    return None


def _rename(frame: pd.DataFrame | None, mapping: dict[str, str]) -> pd.DataFrame | None:
    if frame is None:
        return None
    out = frame.copy()
    out["captioner"] = out["captioner"].map(lambda c: mapping.get(c, c))
    return out


def _sum_usage(usages: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for usage in usages:
        for metric, counters in usage.items():
            dest = total.setdefault(metric, {})
            for key, value in counters.items():
                dest[key] = dest.get(key, 0) + value
    return total


def merge_group(names: list[str], runs: list[Run]) -> RunGroup:
    """One merged :class:`Run` from comparable runs; clashing captioner names get a ``run/`` prefix."""
    if len(runs) == 1:
        return RunGroup(names, runs, runs[0])
    counts = Counter(c for r in runs for c in r.captioners)
    renamed: dict[tuple[str, str], str] = {}
    maps = []
    for name, run in zip(names, runs, strict=True):
        mapping = {c: (f"{name}/{c}" if counts[c] > 1 else c) for c in run.captioners}
        maps.append(mapping)
        renamed.update({(name, c): v for c, v in mapping.items()})

    def cat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
        present = [f for f in frames if f is not None]
        return pd.concat(present, ignore_index=True) if present else None

    captioners = [m[c] for m, r in zip(maps, runs, strict=True) for c in r.captioners]
    metrics: dict[str, Any] = {}
    signatures: dict[str, str] = {}
    summary_caps: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    failures: dict[str, Any] = {}
    images: dict[str, str] = {}
    for mapping, run in zip(maps, runs, strict=True):
        metrics.update(run.manifest.get("metrics", {}))
        signatures.update(run.signatures)
        images.update(run.images)
        for c, doc in run.summary.get("captioners", {}).items():
            summary_caps[mapping.get(c, c)] = doc
        for c, doc in run.summary.get("inputs", {}).items():
            inputs[mapping.get(c, c)] = doc
        for c, doc in run.summary.get("failures", {}).items():
            failures[mapping.get(c, c)] = doc
    summary: dict[str, Any] = {"captioners": summary_caps, "signatures": signatures, "inputs": inputs}
    if failures:
        summary["failures"] = failures
    usage = _sum_usage([r.summary.get("usage", {}) for r in runs])
    if usage:
        summary["usage"] = usage
    signatures_json: dict[str, Any] = {}
    for run in runs:
        signatures_json.update(run.manifest.get("signatures_json", {}))
    stats_tables: dict[str, pd.DataFrame] = {}
    for metric in metrics:
        try:
            parts = [_rename(r.statistics(metric), m) for r, m in zip(runs, maps, strict=True)
                     if metric in r.manifest.get("metrics", {})]
            stats_tables[metric] = pd.concat(parts, ignore_index=True)
        except CapevalError:
            continue  # a 0.1.0 run whose statistics can't be recomputed: stats says so for this metric
    tokens = cat([_rename(r.tokens, {**m, "": ""}) for r, m in zip(runs, maps, strict=True)])
    if tokens is not None:
        tokens = tokens.drop_duplicates(subset=["captioner", "sample_id", "index"])
    manifest = {
        "capeval_version": runs[0].manifest.get("capeval_version"),
        "format_version": min(r.format_version for r in runs),
        "signatures_json": signatures_json,
        "captioners": captioners,
        "metrics": metrics,
        "signatures": signatures,
        "seeds": max(int(r.manifest.get("seeds", 1)) for r in runs),
        "samples": len(runs[0].references),
        "merged_from": [str(r.path) for r in runs],
    }
    merged = Run(
        path=runs[0].path,
        manifest=manifest,
        summary=summary,
        scores=cat([_rename(r.scores, m) for r, m in zip(runs, maps, strict=True)]),
        corpus=cat([_rename(r.corpus, m) for r, m in zip(runs, maps, strict=True)]),
        captions=cat([_rename(r.captions, m) for r, m in zip(runs, maps, strict=True)]),
        references=runs[0].references,
        images=images,
        details=cat([_rename(r.details, m) for r, m in zip(runs, maps, strict=True)]),
        stats_tables=stats_tables,
        tokens=tokens,
    )
    return RunGroup(names, runs, merged, renamed)


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """Split runs into groups of comparable runs (first fit, in the order given) and merge each group."""
    names = run_names(runs)
    pending: list[tuple[list[str], list[Run], list[str]]] = []  # names, runs, why the first run started a group
    for name, run in zip(names, runs, strict=True):
        why_not = []
        for g_names, g_runs, _ in pending:
            reason = incompatibility(RunGroup(g_names, g_runs, g_runs[0]), run, name)
            if reason is None:
                g_names.append(name)
                g_runs.append(run)
                break
            why_not.append(reason)
        else:
            pending.append(([name], [run], why_not))
    groups = []
    for g_names, g_runs, why_not in pending:
        group = merge_group(g_names, g_runs)
        group.reasons = why_not
        groups.append(group)
    return groups
