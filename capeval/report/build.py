"""Assembling the HTML report's context from run directories: leaderboard, figures, usage, manifest, samples."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from capeval.report import plots
from capeval.report.merge import RunGroup
from capeval.report.statsview import StatsView
from capeval.report.thumbs import make_thumbnails
from capeval.rundir import Run
from capeval.version import __version__

log = logging.getLogger("capeval")

DEFAULT_PAGE_SIZE = 20
_USAGE_ORDER = ("judge_requests", "judge_calls", "judge_cache_hits", "judge_retries", "judge_errors",
                "prompt_tokens", "completion_tokens", "cost_usd")


@dataclass
class MetricInfo:
    """One score column of the report (an output key such as ``bleu_4``)."""

    key: str
    family: str
    higher_is_better: bool
    corpus_level: bool
    stochastic: bool
    signature: str


def script_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` only occur inside JSON strings, where ``\\u003c`` etc. mean the same characters, so
    no ``</script>``, ``<!--`` or ``<script`` can end or confuse the script element; U+2028/9 are escaped too.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def fmt(value: float | None, digits: int = 4) -> str:
    """A score for display: 4 decimals below 10, 2 above; an en dash when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.2f}"


def metric_infos(run: Run) -> list[MetricInfo]:
    """The score columns of a run, in the order the metrics ran."""
    info: dict[str, MetricInfo] = {}
    for family, meta in run.manifest.get("metrics", {}).items():
        for key in meta.get("outputs", [family]):
            info[key] = MetricInfo(key, family, bool(meta.get("higher_is_better", True)),
                                   bool(meta.get("corpus_level", False)), bool(meta.get("stochastic", False)),
                                   run.signatures.get(key, ""))
    for doc in run.summary.get("captioners", {}).values():
        for key in doc:
            info.setdefault(key, MetricInfo(key, key, True, False, False, run.signatures.get(key, "")))
    return list(info.values())


def score_cube(run: Run, ids: Sequence[str], captioners: Sequence[str],
               metrics: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, captioners, metrics)`` per-sample scores averaged over seeds (NaN where missing/failed),
    and the standard deviation over seeds (NaN for single-seed scores)."""
    shape = (len(ids), len(captioners), len(metrics))
    scores = run.scores
    si = pd.Index(ids).get_indexer(scores["sample_id"].astype(str))
    ci = pd.Index(captioners).get_indexer(scores["captioner"])
    mi = pd.Index(metrics).get_indexer(scores["metric"])
    keep = (si >= 0) & (ci >= 0) & (mi >= 0)
    si, ci, mi = si[keep], ci[keep], mi[keep]
    values = scores["value"].to_numpy(dtype=float)[keep]
    flat = np.ravel_multi_index((si, ci, mi), shape)
    finite = np.isfinite(values)
    size = int(np.prod(shape))
    total = np.bincount(flat[finite], weights=values[finite], minlength=size)
    count = np.bincount(flat[finite], minlength=size).astype(float)
    sq = np.bincount(flat[finite], weights=values[finite] ** 2, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        var = np.where(count > 1, (sq - count * mean**2) / np.maximum(count - 1, 1), np.nan)
    std = np.sqrt(np.clip(var, 0, None))
    return mean.reshape(shape), std.reshape(shape)


def win_rates(cube: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """``W[i, j]``: share of samples scored for both where captioner ``i`` beats ``j`` (ties count half)."""
    n_cap = cube.shape[1]
    out = np.full((n_cap, n_cap), np.nan)
    sign = 1.0 if higher_is_better else -1.0
    for i in range(n_cap):
        for j in range(n_cap):
            if i == j:
                continue
            a, b = cube[:, i], cube[:, j]
            both = np.isfinite(a) & np.isfinite(b)
            if not both.any():
                continue
            diff = sign * (a[both] - b[both])
            out[i, j] = (np.count_nonzero(diff > 0) + 0.5 * np.count_nonzero(diff == 0)) / both.sum()
    return out


def _summary_entry(run: Run, captioner: str, metric: str) -> dict[str, Any]:
    return run.summary.get("captioners", {}).get(captioner, {}).get(metric, {}) or {}


def leaderboard(run: Run, metrics: Sequence[MetricInfo], stats: StatsView | None) -> list[dict[str, Any]]:
    """One row per captioner with a cell per metric: mean, std, CI, rank (from summary.json and stats)."""
    rows = []
    for cap in run.captioners:
        cells = []
        for m in metrics:
            entry = _summary_entry(run, cap, m.key)
            mean, std = entry.get("mean"), entry.get("std")
            ci = stats.ci(cap, m.key) if stats else None
            rank = stats.rank(cap, m.key) if stats else None
            cells.append({
                "metric": m.key,
                "mean": fmt(mean),
                "std": fmt(std) if std is not None else None,
                "sort": mean if mean is not None else "",
                "ci": f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else None,
                "rank": rank[0] if rank else None,
                "rank_range": rank[1] if rank else None,
                "n": entry.get("n"),
                "seeds": entry.get("seeds"),
                "best": False,
            })
        rows.append({"captioner": cap, "cells": cells})
    for k, m in enumerate(metrics):  # mark the best value of each column
        values = [r["cells"][k]["sort"] for r in rows if r["cells"][k]["sort"] != ""]
        if values:
            best = max(values) if m.higher_is_better else min(values)
            for r in rows:
                r["cells"][k]["best"] = r["cells"][k]["sort"] == best
    return rows


def figures(run: Run, metrics: Sequence[MetricInfo], cube: np.ndarray, stats: StatsView | None,
            prefix: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A bar chart and a pairwise matrix (inline SVG) per metric."""
    caps = run.captioners
    bars, matrices = [], []
    for k, m in enumerate(metrics):
        means = [_summary_entry(run, c, m.key).get("mean") for c in caps]
        means_f = np.array([np.nan if v is None else v for v in means], dtype=float)
        order = np.argsort(-means_f if m.higher_is_better else means_f, kind="stable")
        order = [i for i in order if np.isfinite(means_f[i])] + [i for i in order if not np.isfinite(means_f[i])]
        lo = hi = None
        if stats is not None and any(stats.ci(c, m.key) for c in caps):
            cis = [stats.ci(caps[i], m.key) or (np.nan, np.nan) for i in order]
            lo, hi = [c[0] for c in cis], [c[1] for c in cis]
            label = stats.ci_label
        else:
            stds = [_summary_entry(run, caps[i], m.key).get("std") for i in order]
            if any(s is not None for s in stds):
                s_arr = np.array([np.nan if s is None else s for s in stds], dtype=float)
                lo, hi = list(means_f[order] - s_arr), list(means_f[order] + s_arr)
                label = "error bars: ± std over seeds"
            else:
                label = "no error bars (no statistics for this run)"
        svg = plots.bar_chart(m.key, [caps[i] for i in order], list(means_f[order]), lo, hi,
                              error_label=label, salt=f"{prefix}b{k}")
        bars.append({"metric": m.key, "svg": Markup(svg)})  # matplotlib escapes its text
        if len(caps) > 1:
            wins = win_rates(cube[:, :, k], m.higher_is_better)
            sig = stats.significance_matrix(caps, m.key) if stats else None
            svg = plots.pairwise_matrix(m.key, caps, wins, sig, salt=f"{prefix}m{k}")
            matrices.append({"metric": m.key, "svg": Markup(svg)})
    return bars, matrices


def usage_tables(group: RunGroup, names: Sequence[str]) -> dict[str, Any]:
    """Judge usage (requests, tokens, cost) per run and metric; failures and empty captions per captioner."""
    usage_rows = []
    columns: list[str] = []
    for name, run in zip(names, group.runs, strict=True):
        for metric, counters in run.summary.get("usage", {}).items():
            usage_rows.append({"run": name, "metric": metric, "values": counters})
            columns.extend(k for k in counters if k not in columns)
    columns.sort(key=lambda k: (_USAGE_ORDER.index(k) if k in _USAGE_ORDER else len(_USAGE_ORDER), k))
    usage = [{"run": r["run"], "metric": r["metric"],
              "values": [_usage_value(k, r["values"].get(k)) for k in columns]} for r in usage_rows]
    failures = group.merged.summary.get("failures", {})
    fail_metrics: list[str] = []
    for doc in failures.values():
        fail_metrics.extend(k for k, v in doc.items() if v and k not in fail_metrics)
    fail_rows = [{"captioner": c, "values": [int(failures.get(c, {}).get(k, 0)) for k in fail_metrics]}
                 for c in group.merged.captioners if any(failures.get(c, {}).get(k) for k in fail_metrics)]
    inputs = group.merged.summary.get("inputs", {})
    input_rows = [{"captioner": c, "samples": inputs.get(c, {}).get("samples"),
                   "empty": inputs.get(c, {}).get("empty_candidates", 0)} for c in group.merged.captioners]
    return {"usage_columns": columns, "usage": usage, "failure_metrics": fail_metrics, "failures": fail_rows,
            "inputs": input_rows}


def _usage_value(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key == "cost_usd":
        return f"${value:,.4f}"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def manifest_view(name: str, run: Run) -> dict[str, Any]:
    """What the report shows of one run's manifest (the whole manifest too, as JSON)."""
    man = run.manifest
    inputs = man.get("inputs", {})
    files = []
    refs = inputs.get("references", {})
    if refs:
        files.append({"role": "references", "path": refs.get("path"), "sha256": refs.get("sha256")})
    for cap, doc in inputs.get("candidates", {}).items():
        files.append({"role": f"candidates: {cap}", "path": doc.get("path"), "sha256": doc.get("sha256")})
    env = man.get("environment", {})
    facts = [
        ("run directory", str(run.path)),
        ("capeval", man.get("capeval_version")),
        ("started", man.get("started")),
        ("finished", man.get("finished")),
        ("samples", man.get("samples")),
        ("seeds", man.get("seeds")),
        ("captioners", ", ".join(man.get("captioners", []))),
        ("command", " ".join(man.get("command", []))),
        ("python", env.get("python")),
        ("platform", env.get("platform")),
    ]
    return {
        "name": name,
        "facts": [(k, v) for k, v in facts if v not in (None, "")],
        "signatures": sorted(run.signatures.items()),
        "files": files,
        "packages": sorted(env.get("packages", {}).items()),
        "options": sorted((k, json.dumps(v, ensure_ascii=False)) for k, v in man.get("options", {}).items()),
        "json": json.dumps(man, indent=2, ensure_ascii=False),
    }


def _rounded(values: np.ndarray) -> list[float | None]:
    flat = np.round(values.ravel(), 4).tolist()
    return [None if v != v or v in (math.inf, -math.inf) else v for v in flat]


def details_by_sample(run: Run, ids: Sequence[str], captioners: Sequence[str]) -> tuple[list[str], list[Any]]:
    """Judge reasons and raw replies: the detail keys (``clair``, ``clair (seed 1)``, ...) and per sample
    ``[[captioner index, key index, text], ...]`` (0 when the sample has none)."""
    out: list[Any] = [0] * len(ids)
    det = run.details
    if det is None or det.empty:
        return [], out
    det = det[det["detail"].notna() & det["captioner"].isin(captioners)]
    pos = pd.Index(ids).get_indexer(det["sample_id"].astype(str))
    cap = pd.Index(captioners).get_indexer(det["captioner"])
    labels = det["metric"].astype(str)
    if "seed" in det and det["seed"].nunique() > 1:
        labels = labels + " (seed " + det["seed"].astype(str) + ")"
    codes, keys = pd.factorize(labels, sort=False)
    for p, c, k, text in zip(pos.tolist(), cap.tolist(), codes.tolist(), det["detail"].astype(str).tolist(),
                             strict=True):
        if p < 0:
            continue
        if out[p] == 0:
            out[p] = []
        out[p].append([c, k, text])
    return [str(k) for k in keys], out


def sample_blob(run: Run, metrics: Sequence[MetricInfo], cube: np.ndarray, seed_std: np.ndarray,
                thumbs: dict[str, str] | None, page_size: int) -> dict[str, Any]:
    """The per-sample browser's data, column-oriented and compact (rendered one page at a time by JS)."""
    ids = list(run.references)
    caps = run.captioners
    captions = run.captions
    grid = np.full((len(ids), len(caps)), None, dtype=object)
    si = pd.Index(ids).get_indexer(captions["sample_id"].astype(str))
    ci = pd.Index(caps).get_indexer(captions["captioner"])
    ok = (si >= 0) & (ci >= 0)
    grid[si[ok], ci[ok]] = captions["caption"].to_numpy(dtype=object)[ok]
    n_cells = len(caps) * len(metrics)
    detail_keys, details = details_by_sample(run, ids, caps)
    flat_scores = _rounded(cube)
    blob: dict[str, Any] = {
        "captioners": caps,
        "metrics": [m.key for m in metrics],
        "hib": [m.higher_is_better for m in metrics],
        "ids": ids,
        "refs": [run.references[i] for i in ids],
        "caps": grid.tolist(),
        "scores": [flat_scores[k * n_cells:(k + 1) * n_cells] for k in range(len(ids))],
        "detailKeys": detail_keys,
        "details": details,
        "pageSize": page_size,
    }
    if np.isfinite(seed_std).any():
        flat_std = _rounded(seed_std)
        blob["seedStd"] = [flat_std[k * n_cells:(k + 1) * n_cells] for k in range(len(ids))]
    if thumbs is not None:
        blob["thumbs"] = [thumbs.get(i) for i in ids]
    return blob


def group_context(group: RunGroup, index: int, stats: StatsView | None, images_dir: str | Path | None,
                  page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    """Everything the template shows for one group of runs."""
    run = group.merged
    metrics = metric_infos(run)
    ids = list(run.references)
    cube, seed_std = score_cube(run, ids, run.captioners, [m.key for m in metrics])
    prefix = f"g{index}"
    bars, matrices = figures(run, metrics, cube, stats, prefix)
    thumbs_note = None
    thumbs = None
    if images_dir is not None:
        found = make_thumbnails(images_dir, ids, run.images)
        thumbs = found.urls
        thumbs_note = f"{len(found.urls)} of {len(ids)} images found in {images_dir}"
        if found.missing:
            thumbs_note += f"; missing: {len(found.missing)} (e.g. id {found.missing[0]})"
        if found.unreadable:
            thumbs_note += f"; unreadable: {len(found.unreadable)} ({next(iter(found.unreadable.values()))})"
    renamed = [{"run": r, "captioner": c, "shown": s} for (r, c), s in group.renamed.items() if c != s]
    return {
        "id": prefix,
        "title": " + ".join(group.names),
        "run_names": group.names,
        "merged": len(group.runs) > 1,
        "renamed": renamed,
        "reasons": group.reasons,
        "captioners": run.captioners,
        "samples": len(ids),
        "metrics": [vars(m) for m in metrics],
        "leaderboard": leaderboard(run, metrics, stats),
        "stats": stats.describe() if stats else None,
        "stats_error": None,
        "stats_off": False,
        "bars": bars,
        "matrices": matrices,
        "thumbs_note": thumbs_note,
        "data_json": Markup(script_json(sample_blob(run, metrics, cube, seed_std, thumbs, page_size))),
        **usage_tables(group, group.names),
        "manifests": [manifest_view(n, r) for n, r in zip(group.names, group.runs, strict=True)],
    }


def report_context(groups: Sequence[RunGroup], group_stats: Sequence[StatsView | None],
                   images_dir: str | Path | None, title: str | None, template_name: str,
                   page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    """The template's whole context."""
    ctx_groups = [group_context(g, k, s, images_dir, page_size)
                  for k, (g, s) in enumerate(zip(groups, group_stats, strict=True))]
    names = [n for g in groups for n in g.names]
    return {
        "title": title or f"capeval report · {', '.join(names)}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "capeval_version": __version__,
        "template": template_name,
        "groups": ctx_groups,
    }
