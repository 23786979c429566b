"""``capeval.evaluate``: load -> validate/align -> score per sample -> aggregate, as a Python call."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval.context import RunContext
from capeval.errors import InputError, MetricUnavailable
from capeval.hashing import sha256_file, sha256_json
from capeval.io.align import Dataset, align
from capeval.io.readers import CaptionFile, read_candidates, read_references
from capeval.metrics.base import Batch, Metric, MetricOutput
from capeval.progress import Progress
from capeval.registry import get_metric_class

log = logging.getLogger("capeval")

DEFAULT_METRICS = ("bleu", "meteor", "rouge_l", "cider")

References = str | Path | CaptionFile | Mapping[Any, Sequence[str]]
Candidates = str | Path | CaptionFile | Mapping[Any, str]


def _as_references(refs: References) -> tuple[CaptionFile, dict[str, str]]:
    if isinstance(refs, CaptionFile):
        return refs, {"path": refs.path}
    if isinstance(refs, (str, Path)):
        return read_references(refs), {"path": str(refs), "sha256": sha256_file(refs)}
    captions: dict[str, list[str]] = {}
    for k, v in refs.items():
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise InputError("references must be strings or lists of strings", path="<references>", sample_id=k)
        captions[str(k)] = list(v)
    return (CaptionFile("<references>", captions, "untyped"),
            {"path": "<in memory>", "sha256": sha256_json(captions)})


def _as_candidates(name: str, cands: Candidates) -> tuple[CaptionFile, dict[str, str]]:
    if isinstance(cands, CaptionFile):
        return cands, {"path": cands.path}
    if isinstance(cands, (str, Path)):
        return read_candidates(cands)[None], {"path": str(cands), "sha256": sha256_file(cands)}
    captions: dict[str, list[str]] = {}
    for k, v in cands.items():
        if not isinstance(v, str):
            raise InputError(f"caption must be a string, got {type(v).__name__}", path=f"<{name}>", sample_id=k)
        captions[str(k)] = [v]
    return (CaptionFile(f"<{name}>", captions, "untyped"),
            {"path": "<in memory>", "sha256": sha256_json(captions)})


def _batch(dataset: Dataset, captioner: str) -> Batch:
    ids = dataset.ids_for(captioner)
    return Batch(
        captioner=captioner,
        sample_ids=ids,
        candidates=[dataset.candidates[captioner][i] for i in ids],
        references=[dataset.references[i] for i in ids],
        images=[dataset.images.get(i) for i in ids],
    )


def _collect(metric: Metric, out: MetricOutput, cap: str, ids: list[str], seed: int, sample_frames: list,
             corpus_rows: list, detail_frames: list, failures: dict, usage: dict) -> None:
    """Append one scoring step's output to the run's tables (checking its shape)."""
    for key in metric.outputs:
        values = np.asarray(out.per_sample[key], dtype=float)
        if len(values) != len(ids):
            raise RuntimeError(f"metric {metric.name} returned {len(values)} scores for {len(ids)} samples")
        sample_frames.append(pd.DataFrame({
            "captioner": cap, "sample_id": ids, "metric": key, "seed": seed, "value": values,
        }))
        corpus_rows.append({"captioner": cap, "metric": key, "seed": seed, "value": float(out.corpus[key])})
        if out.failures.get(key):
            failures[cap][key] = failures[cap].get(key, 0) + int(out.failures[key])
    for key, texts in out.details.items():
        detail_frames.append(pd.DataFrame({
            "captioner": cap, "sample_id": ids, "metric": key, "seed": seed, "detail": texts,
        }))
    for k, v in out.usage.items():
        usage.setdefault(metric.name, {})
        usage[metric.name][k] = usage[metric.name].get(k, 0) + v


def _metric_info(metric: Metric) -> dict[str, Any]:
    return {
        "outputs": list(metric.outputs), "version": metric.version, "stochastic": metric.stochastic,
        "corpus_level": metric.corpus_level, "needs": sorted(metric.needs),
        "higher_is_better": metric.higher_is_better,
    }


def build_metrics(names: Sequence[str], options: dict[str, Any]) -> list[Metric]:
    """Instantiate metrics by name, failing early (with the reason) for any that can't run here."""
    metrics = []
    for name in dict.fromkeys(names):
        cls = get_metric_class(name)
        avail = cls.availability()
        if not avail.ok:
            raise MetricUnavailable(f"metric {name!r} can't run here: {avail.reason}")
        metrics.append(cls.from_options(options))
    return metrics


@dataclass
class Results:
    """Everything a run produced. ``samples`` and ``corpus`` are long-format DataFrames."""

    dataset: Dataset
    samples: pd.DataFrame  # captioner, sample_id, metric, seed, value
    corpus: pd.DataFrame  # captioner, metric, seed, value
    signatures: dict[str, str]
    metric_info: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    details: pd.DataFrame | None = None  # captioner, sample_id, metric, seed, detail
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    seeds: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=lambda: {"name": "local", "workers": 1})
    started: float = 0.0
    finished: float = 0.0

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (captioner, metric) in run order: mean, std (across seeds), n, seeds."""
        finite = self.samples[np.isfinite(self.samples["value"].to_numpy(dtype=float))]
        n_scored = finite.groupby(["captioner", "metric"], sort=False)["sample_id"].nunique()
        rows = []
        for (cap, metric), grp in self.corpus.groupby(["captioner", "metric"], sort=False):
            values = grp.sort_values("seed")["value"].to_numpy(dtype=float)
            ok = values[np.isfinite(values)]
            rows.append({
                "captioner": cap, "metric": metric,
                "mean": float(np.mean(ok)) if len(ok) else float("nan"),
                "std": float(np.std(ok, ddof=1)) if len(ok) > 1 else None,
                "n": int(n_scored.get((cap, metric), 0)),
                "seeds": int(len(values)),
            })
        return pd.DataFrame(rows, columns=["captioner", "metric", "mean", "std", "n", "seeds"])

    def summary_dict(self) -> dict[str, Any]:
        """The ``summary.json`` document."""
        captioners: dict[str, dict[str, Any]] = {name: {} for name in self.dataset.captioners}
        for row in self.summary.itertuples(index=False):
            captioners[row.captioner][row.metric] = {
                "mean": None if not np.isfinite(row.mean) else float(row.mean),
                "std": None if row.std is None or not np.isfinite(row.std) else float(row.std),
                "n": int(row.n),
                "seeds": int(row.seeds),
            }
        out: dict[str, Any] = {"captioners": captioners, "signatures": dict(self.signatures)}
        out["inputs"] = {
            name: {
                "samples": len(self.dataset.candidates[name]),
                "empty_candidates": len(self.dataset.empty_candidates.get(name, [])),
            }
            for name in self.dataset.captioners
        }
        if any(any(v for v in f.values()) for f in self.failures.values()):
            out["failures"] = self.failures
        if self.usage:
            out["usage"] = self.usage
        return out

    def write(self, run_dir: str | Path, command: list[str] | None = None) -> Path:
        """Write the run directory (see :mod:`capeval.rundir`)."""
        from capeval.rundir import write_run

        return write_run(self, Path(run_dir), command=command)


def evaluate(
    references: References,
    candidates: Mapping[str, Candidates],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    seeds: int = 1,
    options: dict[str, Any] | None = None,
    progress: bool | None = False,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> Results:
    """Score captioners against references.

    Args:
        references: a references file path, a :class:`CaptionFile`, or ``{id: [ref, ...]}``.
        candidates: ``{captioner: path | CaptionFile | {id: caption}}``.
        metrics: registered metric names.
        seeds: stochastic metrics run once per seed ``0..seeds-1``; deterministic ones once.
        options: metric options (e.g. ``bertscore_model``, ``judge_model``).
        progress: show a progress bar (None: when stderr is a terminal).
        engine: ``local`` (this process) or ``ray`` (samples sharded over Ray workers; same numbers).
        ray_address: the Ray cluster to join (default ``RAY_ADDRESS``, else a new local instance).
        workers: Ray workers (default: the cluster's CPUs).

    Example:
        >>> r = evaluate({"a": ["a cat sits on a mat"]}, {"sys": {"a": "a cat on a mat"}}, metrics=["cider"])
        >>> list(r.samples.columns)
        ['captioner', 'sample_id', 'metric', 'seed', 'value']
    """
    if seeds < 1:
        raise InputError(f"seeds must be >= 1, got {seeds}")
    from capeval.engine import ENGINES

    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    options = dict(options or {})
    options.setdefault("seeds", seeds)
    started = time.time()
    metric_objs = build_metrics(metrics, options)  # fail fast on an unknown or unavailable metric
    ref_file, ref_info = _as_references(references)
    cand_files: dict[str, CaptionFile] = {}
    cand_info: dict[str, dict[str, str]] = {}
    for name, c in candidates.items():
        cand_files[name], cand_info[name] = _as_candidates(name, c)
    dataset = align(ref_file, cand_files)
    context = RunContext(dataset, options)

    sample_frames: list[pd.DataFrame] = []
    corpus_rows: list[dict[str, Any]] = []
    detail_frames: list[pd.DataFrame] = []
    signatures: dict[str, str] = {}
    failures: dict[str, dict[str, int]] = {name: {} for name in dataset.captioners}
    usage: dict[str, dict[str, float]] = {}
    metric_info: dict[str, dict[str, Any]] = {}

    all_refs = list(dataset.references.values())
    steps = sum(len(dataset.captioners) * (seeds if m.stochastic else 1) for m in metric_objs)
    engine_info: dict[str, Any] = {"name": "local", "workers": 1}
    if engine == "ray":
        from capeval.engine.ray_engine import score_on_ray

        sharded = score_on_ray(dataset, metric_objs, seeds, options, address=ray_address, workers=workers)
        engine_info = sharded.engine
        for metric in metric_objs:
            signatures.update(metric.signatures(all_refs))
            metric_info[metric.name] = _metric_info(metric)
            for cap in dataset.captioners:
                for seed in range(seeds) if metric.stochastic else (0,):
                    _collect(metric, sharded.outputs[(metric.name, cap, seed)], cap, dataset.ids_for(cap), seed,
                             sample_frames, corpus_rows, detail_frames, failures, usage)
        metric_objs, steps = [], 0  # nothing left to score or close here
    # Every metric is set up before any scores, so slow starts (METEOR's JVM loading its paraphrase
    # tables, model loading) overlap with the work of the metrics scored first.
    try:
        for metric in metric_objs:
            metric.setup(context)
        with Progress(steps, enabled=progress) as bar:
            for metric in metric_objs:
                signatures.update(metric.signatures(all_refs))
                metric_info[metric.name] = _metric_info(metric)
                for cap in dataset.captioners:
                    batch = _batch(dataset, cap)
                    for seed in range(seeds) if metric.stochastic else (0,):
                        bar.step(f"{metric.name} · {cap}" + (f" · seed {seed}" if metric.stochastic else ""))
                        out = metric.score(batch, context, seed=seed)
                        _collect(metric, out, cap, batch.sample_ids, seed, sample_frames, corpus_rows,
                                 detail_frames, failures, usage)
                        bar.advance()
    finally:
        for metric in metric_objs:
            metric.close()

    samples = (pd.concat(sample_frames, ignore_index=True) if sample_frames
               else pd.DataFrame(columns=["captioner", "sample_id", "metric", "seed", "value"]))
    samples["seed"] = samples["seed"].astype("int64")
    return Results(
        dataset=dataset,
        samples=samples,
        corpus=pd.DataFrame(corpus_rows, columns=["captioner", "metric", "seed", "value"]),
        signatures=signatures,
        metric_info=metric_info,
        inputs={"references": ref_info, "candidates": cand_info},
        failures=failures,
        details=pd.concat(detail_frames, ignore_index=True) if detail_frames else None,
        usage=usage,
        seeds=seeds,
        options=options,
        engine=engine_info,
        started=started,
        finished=time.time(),
    )
