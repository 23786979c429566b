"""The ``stats.json`` document: bootstrap confidence intervals, paired permutation tests with Holm's correction
and significance rankings for every metric and captioner of a run (see :mod:`capeval.stats`)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from capeval.aggregation import mean_over_seeds
from capeval.errors import CapevalError
from capeval.stats.bootstrap import bootstrap_se, ids_key, percentile_interval, resample_counts, rng_for
from capeval.stats.corpus import Group, Source, StatsInput, build_source
from capeval.stats.paired import holm, is_exact, iter_flip_masks, null_from_moves, permutation_pvalues, swap_moves
from capeval.stats.ranking import order_by_rank, significance_ranks
from capeval.version import __version__

log = logging.getLogger("capeval")

STATS_VERSION = 2
STATS_FILE = "stats.json"
RUN_FILES = ("scores.parquet", "corpus.parquet", "captions.parquet", "references.json")
STATISTICS_DIR = "statistics"


def _num(x: Any) -> float | None:
    """A JSON-safe float (None for NaN/inf/None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class _Plan:
    """One group's bootstrap multiplicities, seed draws, permutation masks and resampled values."""

    def __init__(self, group: Group, n_boot: int, n_perm: int, seed: int) -> None:
        key = ids_key(group.ids)
        n = len(group.ids)
        self.group = group
        self._perm = (n, n_perm, seed, key)
        self._moves: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.weights = resample_counts(n, n_boot, rng_for(seed, "boot", key))
        self.seed_counts = (resample_counts(group.seeds, n_boot, rng_for(seed, "seeds", key))
                            if group.seeds > 1 else None)
        self.exact = is_exact(n, n_perm)
        self.values = group.resample(self.weights, self.seed_counts) if n_boot and n else {
            c: np.zeros(0) for c in group.captioners}
        self.point = group.point() if n else {c: float("nan") for c in group.captioners}

    def moves(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-image permutation statistics of every captioner and what each swap mask moves (computed once)."""
        if self._moves is None:
            n, n_perm, seed, key = self._perm
            stats = {c: self.group.perm_stats(c) for c in self.group.captioners}
            self._moves = (stats, swap_moves(iter_flip_masks(n, n_perm, rng_for(seed, "perm", key)), stats))
        return self._moves


class MetricAnalysis:
    """Bootstrap and permutation results of one metric; groups and plans are built lazily and shared."""

    def __init__(self, source: Source, ids_by_cap: dict[str, list[str]], *, n_boot: int, n_perm: int,
                 seed: int, alpha: float) -> None:
        self.source = source
        self.ids_by_cap = ids_by_cap
        self.n_boot, self.n_perm, self.seed, self.alpha = n_boot, n_perm, seed, alpha
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], _Plan] = {}
        by_ids: dict[tuple[str, ...], list[str]] = {}
        for cap, ids in ids_by_cap.items():
            by_ids.setdefault(tuple(ids), []).append(cap)
        self._home = {cap: (ids, tuple(caps)) for ids, caps in by_ids.items() for cap in caps}

    def _plan(self, ids: tuple[str, ...], caps: tuple[str, ...]) -> _Plan:
        key = (ids, caps)
        if key not in self._plans:
            self._plans[key] = _Plan(self.source.group(list(caps), list(ids)), self.n_boot, self.n_perm, self.seed)
        return self._plans[key]

    def captioner(self, cap: str) -> dict[str, Any]:
        """Recomputed value, percentile CI, bootstrap standard error and sample count of one captioner."""
        ids, caps = self._home[cap]
        plan = self._plan(ids, caps)
        samples = plan.values[cap]
        lo, hi = percentile_interval(samples, self.alpha) if samples.size else (float("nan"), float("nan"))
        return {"recomputed": plan.point[cap], "ci_low": lo, "ci_high": hi,
                "se": bootstrap_se(samples) if samples.size else float("nan"),
                "n": plan.group.n_valid(cap) if ids else 0}

    def pair(self, a: str, b: str) -> dict[str, Any]:
        """Paired comparison of ``a`` and ``b`` on their shared images: difference ``a - b``, its bootstrap
        CI, and permutation p-values (two-sided and one-sided)."""
        ids_a, caps_a = self._home[a]
        ids_b, _ = self._home[b]
        if ids_a == ids_b:
            plan = self._plan(ids_a, caps_a)
        else:
            shared_set = set(ids_b)
            shared = tuple(i for i in ids_a if i in shared_set)
            plan = self._plan(shared, (a, b))
        n = len(plan.group.ids)
        out: dict[str, Any] = {"a": a, "b": b, "n": n, "diff": plan.point[a] - plan.point[b]}
        if n == 0:
            out.update(ci_low=float("nan"), ci_high=float("nan"), p_value=float("nan"), p_less=float("nan"),
                       p_greater=float("nan"), test="none")
            return out
        if plan.values[a].size:
            out["ci_low"], out["ci_high"] = percentile_interval(plan.values[a] - plan.values[b], self.alpha)
        else:
            out["ci_low"] = out["ci_high"] = float("nan")
        stats, moves = plan.moves()
        observed, null = null_from_moves(stats[a], stats[b], moves[a], moves[b], plan.group.finish)
        p = permutation_pvalues(observed, null, plan.exact)
        out.update(p_value=p["two-sided"], p_less=p["less"], p_greater=p["greater"],
                   test="permutation-exact" if plan.exact else "permutation")
        return out


def _ordered_ids(data: StatsInput, metric: str) -> dict[str, list[str]]:
    """Sample ids each captioner has for ``metric``, in reference order."""
    order = {sid: k for k, sid in enumerate(data.references)}
    sub = data.scores[data.scores["metric"] == metric]
    out = {}
    for cap in data.captioners:
        ids = sub.loc[sub["captioner"] == cap, "sample_id"].astype(str).unique().tolist()
        if ids:
            out[cap] = sorted(ids, key=lambda i: order.get(i, len(order)))
    return out


def _run_values(data: StatsInput, metric: str) -> dict[str, dict[str, Any]]:
    """The run's corpus value (mean over seeds), its std across seeds and the seed count per captioner."""
    out = {}
    sub = data.corpus[data.corpus["metric"] == metric]
    for cap, grp in sub.groupby("captioner", sort=False):
        v = grp.sort_values("seed")["value"].to_numpy(dtype=float)
        mean, std = mean_over_seeds(v)
        out[str(cap)] = {"value": mean, "seed_std": std, "seeds": int(len(v))}
    return out


def analyse_metric(data: StatsInput, metric: str, *, n_boot: int, n_perm: int, seed: int,
                   alpha: float, pairs: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The ``stats.json`` entry of one output metric (see :func:`compute_stats`)."""
    info = data.metric_info.get(metric, {})
    signature = data.signatures.get(metric, "")
    kind = data.rule(metric) or "unavailable"
    hib = bool(info.get("higher_is_better", True))
    run_values = _run_values(data, metric)
    ids_by_cap = {c: ids for c, ids in _ordered_ids(data, metric).items() if c in run_values}
    caps = [c for c in data.captioners if c in ids_by_cap]
    entry: dict[str, Any] = {"method": kind, "higher_is_better": hib, "signature": signature,
                             "seeds": max((v["seeds"] for v in run_values.values()), default=1),
                             "captioners": {}, "pairs": [], "ranking": [], "notes": []}
    try:
        source = build_source(metric, data)
    except CapevalError as exc:
        entry["method"] = "unavailable"
        entry["notes"].append(f"no confidence intervals or tests: {exc}")
        for cap in caps:
            rv = run_values[cap]
            entry["captioners"][cap] = {"value": _num(rv["value"]), "ci_low": None, "ci_high": None, "se": None,
                                        "n": len(ids_by_cap[cap]), "seeds": rv["seeds"],
                                        "seed_std": _num(rv["seed_std"]), "rank": None, "rank_range": None}
        return entry
    if kind == "mean" and getattr(source, "kind", kind) != kind:
        entry["method"] = source.kind
    analysis = MetricAnalysis(source, {c: ids_by_cap[c] for c in caps}, n_boot=n_boot, n_perm=n_perm, seed=seed,
                              alpha=alpha)
    for cap in caps:
        res = analysis.captioner(cap)
        rv = run_values[cap]
        entry["captioners"][cap] = {"value": _num(rv["value"]), "ci_low": _num(res["ci_low"]),
                                    "ci_high": _num(res["ci_high"]), "se": _num(res["se"]), "n": res["n"],
                                    "seeds": rv["seeds"], "seed_std": _num(rv["seed_std"])}
    todo = list(pairs) if pairs is not None else list(combinations(caps, 2))
    results = [analysis.pair(a, b) for a, b in todo]
    adjusted = holm([r["p_value"] for r in results])
    significant: dict[tuple[str, str], bool] = {}
    for r, p_holm in zip(results, adjusted, strict=True):
        sig = bool(np.isfinite(p_holm) and p_holm < alpha)
        significant[(r["a"], r["b"])] = sig
        better = None
        if sig:
            better = r["a"] if (r["diff"] > 0) == hib else r["b"]
        entry["pairs"].append({
            "a": r["a"], "b": r["b"], "n": r["n"], "diff": _num(r["diff"]), "ci_low": _num(r["ci_low"]),
            "ci_high": _num(r["ci_high"]), "p_value": _num(r["p_value"]), "p_holm": _num(p_holm),
            "p_less": _num(r["p_less"]), "p_greater": _num(r["p_greater"]), "significant": sig,
            "better": better, "test": r["test"],
        })
    values = {c: run_values[c]["value"] for c in caps}
    ranks = significance_ranks(values, significant, higher_is_better=hib)
    for cap in caps:
        entry["captioners"][cap]["rank"] = ranks[cap]["rank"]
        entry["captioners"][cap]["rank_range"] = ranks[cap]["rank_range"]
    entry["ranking"] = list(order_by_rank(ranks, values, higher_is_better=hib))
    return entry


def analyse(data: StatsInput, *, metrics: Sequence[str] | None = None, n_boot: int = 1000, n_perm: int = 5000,
            seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Statistics of every (or the given) output metric of ``data``; the ``stats.json`` document minus the
    inputs hash."""
    if n_boot < 0 or n_perm < 1:
        raise CapevalError(f"n_boot must be >= 0 and n_perm >= 1 (got {n_boot}, {n_perm})")
    if not 0 < alpha < 1:
        raise CapevalError(f"alpha must be in (0, 1), got {alpha}")
    started = time.perf_counter()
    names = list(metrics) if metrics is not None else data.metrics()
    unknown = [m for m in names if m not in set(data.corpus["metric"].astype(str))]
    if unknown:
        raise CapevalError(f"metric(s) not in the run: {', '.join(unknown)} (the run has {', '.join(data.metrics())})")
    out: dict[str, Any] = {
        "stats_version": STATS_VERSION,
        "capeval_version": __version__,
        "params": {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "alpha": alpha,
                   "ci": "percentile bootstrap over images", "test": "paired permutation (swap captioners per image)",
                   "correction": "holm over the pairs of each metric"},
        "captioners": list(data.captioners),
        "metrics": {},
        "warnings": [],
    }
    for metric in names:
        entry = analyse_metric(data, metric, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
        out["metrics"][metric] = entry
        for note in entry["notes"]:
            out["warnings"].append(f"{metric}: {note}")
            log.warning("stats: %s: %s", metric, note)
    out["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    return out


def inputs_sha256(run_dir: str | Path, params: dict[str, Any]) -> str:
    """Hash of what ``stats.json`` depends on: the run's score/caption/reference files, its signatures and
    metric info, the statistics parameters and :data:`STATS_VERSION`."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    for name in RUN_FILES:
        path = run_dir / name
        h.update(name.encode())
        if path.exists():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    for path in sorted((run_dir / STATISTICS_DIR).glob("*.parquet")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    meta = {"signatures": manifest.get("signatures"), "metrics": manifest.get("metrics"),
            "params": params, "stats_version": STATS_VERSION}
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def compute_stats(run: Any, *, n_boot: int = 1000, n_perm: int = 5000, seed: int = 0, alpha: float = 0.05,
                  metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``stats.json`` document of a run (a :class:`capeval.rundir.Run`, e.g. several runs merged in memory,
    or a run directory path).

    Does not write anything; see :func:`load_or_compute_stats`. ``inputs_sha256`` is set only when ``run`` is a
    path and every metric is analysed (an in-memory ``Run`` may not match the files at its ``path``).
    """
    from_path = isinstance(run, (str, Path))
    if from_path:
        from capeval.rundir import load_run

        run = load_run(run)
    doc = analyse(StatsInput.from_run(run), metrics=metrics, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
    if from_path and metrics is None:
        doc["inputs_sha256"] = inputs_sha256(run.path, _params(n_boot, n_perm, seed, alpha))
    return doc


def _params(n_boot: int, n_perm: int, seed: int, alpha: float) -> dict[str, Any]:
    return {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "alpha": alpha}


def load_or_compute_stats(run_dir: str | Path, *, n_boot: int = 1000, n_perm: int = 5000, seed: int = 0,
                          alpha: float = 0.05, write: bool = True, refresh: bool = False) -> dict[str, Any]:
    """``stats.json`` of a run directory: reused when its ``inputs_sha256`` matches the run and the parameters,
    else computed (and written, unless ``write=False``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise CapevalError(f"{run_dir}: not a capeval run directory (no manifest.json)")
    digest = inputs_sha256(run_dir, _params(n_boot, n_perm, seed, alpha))
    path = run_dir / STATS_FILE
    if path.exists() and not refresh:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("inputs_sha256") == digest:
                return doc
        except (OSError, ValueError):
            log.warning("%s is unreadable; recomputing it", path)
    doc = compute_stats(run_dir, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
    doc["inputs_sha256"] = digest
    if write:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return doc
