"""``capeval.evaluate``: load -> validate/align -> score per sample -> aggregate, as a Python call."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval.aggregation import mean_over_seeds
from capeval.context import RunContext
from capeval.errors import InputError, MetricUnavailable
from capeval.hashing import sha256_json, sha256_path
from capeval.io.align import Dataset, align
from capeval.io.readers import CaptionFile, read_candidates, read_references
from capeval.metrics.base import Batch, Metric, MetricStatistics
from capeval.progress import Progress
from capeval.registry import get_metric_class

log = logging.getLogger("capeval")

DEFAULT_METRICS = ("bleu", "meteor", "rouge_l", "cider")

References = str | Path | CaptionFile | Mapping[Any, Sequence[str]]
Candidates = str | Path | CaptionFile | Mapping[Any, str]


def _unique_key(seen: dict[str, Any], key: Any, where: str) -> None:
    """Ids are text inside capeval: a mapping holding both ``974`` and ``"974"`` would lose one of them."""
    text = str(key)
    if text in seen:
        raise InputError(f"the mapping holds both {seen[text]!r} and {key!r}, which are the same id",
                         path=where, sample_id=key)
    seen[text] = key


def input_sha256(cf: CaptionFile) -> str:
    """sha256 of a caption file's input: the one its reader computed while reading, else of the path (a folder
    or a tool file)."""
    return cf.sha256 or sha256_path(cf.path)


def _as_references(refs: References) -> tuple[CaptionFile, dict[str, str]]:
    if isinstance(refs, CaptionFile):
        return refs, {"path": refs.path, **({"sha256": refs.sha256} if refs.sha256 else {})}
    if isinstance(refs, (str, Path)):
        cf = read_references(refs)  # cf.path: the file itself, also for lmms:/vlmeval:/hf: inputs
        return cf, {"path": str(refs), "sha256": input_sha256(cf)}
    captions: dict[str, list[str]] = {}
    seen: dict[str, Any] = {}
    for k, v in refs.items():
        _unique_key(seen, k, "<references>")
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise InputError("references must be strings or lists of strings", path="<references>", sample_id=k)
        captions[str(k)] = list(v)
    return (CaptionFile("<references>", captions, "untyped"),
            {"path": "<in memory>", "sha256": sha256_json(captions)})


def _as_candidates(name: str, cands: Candidates) -> tuple[CaptionFile, dict[str, str]]:
    if isinstance(cands, CaptionFile):
        return cands, {"path": cands.path, **({"sha256": cands.sha256} if cands.sha256 else {})}
    if isinstance(cands, (str, Path)):
        cf = read_candidates(cands)[None]
        return cf, {"path": str(cands), "sha256": input_sha256(cf)}
    captions: dict[str, list[str]] = {}
    seen: dict[str, Any] = {}
    for k, v in cands.items():
        _unique_key(seen, k, f"<{name}>")
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


def _collect(metric: Metric, st: MetricStatistics, cap: str, seed: int, acc: _Accumulator) -> None:
    """Append one scoring step's statistics, values and corpus values to the run's tables (checking shapes)."""
    ids = list(st.sample_ids)
    if len(st.table) != len(ids):
        raise RuntimeError(f"metric {metric.name} returned {len(st.table)} statistics rows for {len(ids)} samples")
    corpus = metric.aggregate(st.table)
    for key in metric.outputs:
        values = np.asarray(st.values[key], dtype=float)
        if len(values) != len(ids):
            raise RuntimeError(f"metric {metric.name} returned {len(values)} scores for {len(ids)} samples")
        acc.samples.append(pd.DataFrame({
            "captioner": cap, "sample_id": ids, "metric": key, "seed": seed, "value": values,
        }))
        acc.corpus.append({"captioner": cap, "metric": key, "seed": seed, "value": float(corpus[key][0])})
        if st.failures.get(key):
            acc.failures[cap][key] = acc.failures[cap].get(key, 0) + int(st.failures[key])
    table = st.table.reset_index(drop=True).copy()
    table.insert(0, "sample_id", ids)
    table.insert(0, "seed", seed)
    table.insert(0, "captioner", cap)
    acc.statistics.setdefault(metric.name, []).append(table)
    for key, texts in st.details.items():
        acc.details.append(pd.DataFrame({
            "captioner": cap, "sample_id": ids, "metric": key, "seed": seed, "detail": texts,
        }))
    for k, v in st.usage.items():
        acc.usage.setdefault(metric.name, {})
        acc.usage[metric.name][k] = acc.usage[metric.name].get(k, 0) + v


@dataclass
class _Accumulator:
    failures: dict[str, dict[str, int]]
    samples: list[pd.DataFrame] = field(default_factory=list)
    corpus: list[dict[str, Any]] = field(default_factory=list)
    details: list[pd.DataFrame] = field(default_factory=list)
    statistics: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    usage: dict[str, dict[str, float]] = field(default_factory=dict)


def metric_info(metric: Metric) -> dict[str, Any]:
    """The manifest's description of a metric: outputs, version, aggregation rule and each output's
    display name, scale and direction."""
    return {
        "outputs": list(metric.outputs), "version": metric.version, "stochastic": metric.stochastic,
        "corpus_level": metric.corpus_level, "aggregation": metric.aggregation, "needs": sorted(metric.needs),
        "higher_is_better": metric.higher_is_better,
        "output_info": {key: metric.output_info(key).as_dict() for key in metric.outputs},
    }


# Options that command-line flags set whichever metrics run (``--images``, ``--judge-model``, ...).
FLAG_KEYS = frozenset({"images", "bertscore_model", "bertscore_layer", "judge_model", "judge_base_url",
                       "judge_template", "judge_concurrency", "cache", "refresh_cache", "run_dir",
                       "judge_endpoints"})


def build_metrics(names: Sequence[str | Metric], options: dict[str, Any]) -> list[Metric]:
    """Instantiate metrics by name (built metrics pass through), failing early, with the reason, for any that
    can't run here and for an option key that none of them reads ("did you mean ...")."""
    from capeval.options import check_option_keys

    classes = []
    for item in dict.fromkeys(names):
        cls = type(item) if isinstance(item, Metric) else get_metric_class(item)
        avail = cls.availability()
        if not avail.ok:
            raise MetricUnavailable(f"metric {cls.name!r} can't run here: {avail.reason}")
        classes.append((item, cls))
    check_option_keys(options, [cls.option_keys() for _, cls in classes], extra=FLAG_KEYS)
    return [item if isinstance(item, Metric) else cls.from_options(options) for item, cls in classes]


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
    statistics: dict[str, pd.DataFrame] = field(default_factory=dict)  # metric name -> statistics table
    tokens: pd.DataFrame | None = None  # captioner ("" for references), sample_id, index, tokens
    signatures_json: dict[str, dict[str, Any]] = field(default_factory=dict)
    suite: dict[str, Any] | None = None  # name, version and path of the suite the metrics came from
    engine: dict[str, Any] | None = None  # how the run was computed (e.g. Ray and its workers); moves no score
    started: float = 0.0
    finished: float = 0.0
    external: dict[str, Any] = field(default_factory=dict)  # other tools' own scores (capeval.external)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (captioner, metric) in run order: mean, std (across seeds), n, seeds."""
        finite = self.samples[np.isfinite(self.samples["value"].to_numpy(dtype=float))]
        n_scored = finite.groupby(["captioner", "metric"], sort=False)["sample_id"].nunique()
        rows = []
        for (cap, metric), grp in self.corpus.groupby(["captioner", "metric"], sort=False):
            values = grp.sort_values("seed")["value"].to_numpy(dtype=float)
            mean, std = mean_over_seeds(values)
            rows.append({
                "captioner": cap, "metric": metric, "mean": mean, "std": std,
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
                # blank references dropped from the ids this captioner is scored on
                "dropped_references": sum(self.dataset.dropped_by_id.get(i, 0) for i in self.dataset.candidates[name]),
            }
            for name in self.dataset.captioners
        }
        if any(any(v for v in f.values()) for f in self.failures.values()):
            out["failures"] = self.failures
        if self.usage:
            out["usage"] = self.usage
        if self.external:
            out["external"] = self.external
        return out

    def write(self, run_dir: str | Path, command: list[str] | None = None, *, overwrite: bool = False) -> Path:
        """Write the run directory whole (see :mod:`capeval.rundir`)."""
        from capeval.rundir import write_run

        return write_run(self, Path(run_dir), command=command, overwrite=overwrite)


def evaluate(
    references: References,
    candidates: Mapping[str, Candidates],
    metrics: Sequence[str | Metric] = DEFAULT_METRICS,
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
        metrics: registered metric names, or metrics already built with :func:`build_metrics` (a metric is
            built once per run).
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

    acc = _Accumulator(failures={name: {} for name in dataset.captioners})
    signatures: dict[str, str] = {}
    signatures_json: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}

    all_refs = list(dataset.references.values())
    steps = sum(len(dataset.captioners) * (seeds if m.stochastic else 1) for m in metric_objs)
    engine_info: dict[str, Any] | None = None
    if engine == "ray":
        from capeval.engine.ray_engine import score_on_ray

        sharded = score_on_ray(dataset, metric_objs, seeds, options, address=ray_address, workers=workers)
        engine_info = sharded.engine
        context.merge_tokenized(sharded.tokenized)
        for metric in metric_objs:
            signatures.update(metric.signatures(all_refs))
            signatures_json.update(metric.signatures_json(all_refs))
            info[metric.name] = metric_info(metric)
            for cap in dataset.captioners:
                for seed in range(seeds) if metric.stochastic else (0,):
                    _collect(metric, sharded.outputs[(metric.name, cap, seed)], cap, seed, acc)
        metric_objs, steps = [], 0  # nothing left to score or close here
    # Every metric is set up before any scores, so slow starts (METEOR's JVM loading its paraphrase
    # tables, model loading) overlap with the work of the metrics scored first.
    try:
        for metric in metric_objs:
            metric.setup(context)
        with Progress(steps, enabled=progress) as bar, ThreadPoolExecutor(max_workers=1) as background:
            queued = {}  # background metrics' statistics, computed while the others run
            for metric in metric_objs:
                if metric.background and len(metric_objs) > 1:
                    for cap in dataset.captioners:
                        for seed in range(seeds) if metric.stochastic else (0,):
                            queued[(metric.name, cap, seed)] = background.submit(
                                metric.statistics, _batch(dataset, cap), context, seed)
            # background metrics are collected last, so the run never waits for them while other work is left;
            # their results are then recorded in the metrics' order, as if scored one after another
            run_order = ([m for m in metric_objs if (m.name, dataset.captioners[0], 0) not in queued]
                         + [m for m in metric_objs if (m.name, dataset.captioners[0], 0) in queued])
            computed: dict[tuple[str, str, int], MetricStatistics] = {}
            metric_sigs: dict[str, tuple[dict[str, str], dict[str, dict[str, Any]], dict[str, Any]]] = {}
            try:
                for metric in run_order:
                    metric_sigs[metric.name] = (metric.signatures(all_refs), metric.signatures_json(all_refs),
                                                metric_info(metric))
                    if len(dataset.captioners) > 1 and not metric.background:
                        # e.g. a judge metric sends one image's captioners back to back; the statistics()
                        # calls below then return exactly what they would without it
                        batches = [_batch(dataset, cap) for cap in dataset.captioners]
                        for seed in range(seeds) if metric.stochastic else (0,):
                            metric.prefetch(batches, context, seed)
                    for cap in dataset.captioners:
                        batch = _batch(dataset, cap)
                        for seed in range(seeds) if metric.stochastic else (0,):
                            bar.step(f"{metric.name} · {cap}" + (f" · seed {seed}" if metric.stochastic else ""))
                            job = queued.pop((metric.name, cap, seed), None)
                            st = job.result() if job is not None else metric.statistics(batch, context, seed=seed)
                            computed[(metric.name, cap, seed)] = st
                            bar.advance()
                for metric in metric_objs:
                    sigs, sigs_json, info[metric.name] = metric_sigs[metric.name]
                    signatures.update(sigs)
                    signatures_json.update(sigs_json)
                    for cap in dataset.captioners:
                        for seed in range(seeds) if metric.stochastic else (0,):
                            _collect(metric, computed.pop((metric.name, cap, seed)), cap, seed, acc)
            except BaseException:
                for job in queued.values():  # don't wait for background work nobody will read
                    job.cancel()
                raise
    finally:
        for metric in metric_objs:
            metric.close()

    samples = (pd.concat(acc.samples, ignore_index=True) if acc.samples
               else pd.DataFrame(columns=["captioner", "sample_id", "metric", "seed", "value"]))
    samples["seed"] = samples["seed"].astype("int64")
    return Results(
        dataset=dataset,
        samples=samples,
        corpus=pd.DataFrame(acc.corpus, columns=["captioner", "metric", "seed", "value"]),
        signatures=signatures,
        metric_info=info,
        inputs={"references": ref_info, "candidates": cand_info},
        failures=acc.failures,
        details=pd.concat(acc.details, ignore_index=True) if acc.details else None,
        usage=acc.usage,
        seeds=seeds,
        options=options,
        statistics={name: pd.concat(frames, ignore_index=True) for name, frames in acc.statistics.items()},
        tokens=context.token_table(),
        signatures_json=signatures_json,
        engine=engine_info,
        started=started,
        finished=time.time(),
    )
