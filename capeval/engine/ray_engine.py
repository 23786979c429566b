"""``--engine ray``: one run's samples sharded over Ray actors (Ray core), joined on the driver.

Each actor is a :class:`capeval.engine.shards.ShardWorker` (one CPU): it builds and sets up the run's metrics
once, so models load once per worker and each worker has one METEOR JVM. Shards are contiguous ranges of the
samples, at most ``SHARD_SAMPLES`` each, dealt to the actors in turn. The driver joins per-sample values in
sample order and computes every corpus score from the joined statistics; CIDEr-D takes a second pass with the
document frequencies of the whole reference set. Captions are PTB-tokenised once on the driver (while Ray
starts), as a local run tokenises them, and each shard gets its part: the PTB tokenizer's output for a caption
can depend on the next caption of its batch, so shards tokenised alone could score differently. Judge metrics
share one cache writer (an actor on the driver's machine, :mod:`capeval.engine.cache_service`). The tables
handed back are the ones the local engine builds, so the run directory is the same; only ``manifest.engine``
says where it ran.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capeval.engine.ray_setup import EngineError, start_ray, stop_ray
from capeval.engine.shards import Piece, Shard, cider_totals, local_torch_threads, shard_rule, split, with_tokens
from capeval.errors import CapevalError
from capeval.io.align import Dataset
from capeval.metrics.base import Metric, MetricStatistics

log = logging.getLogger("capeval")

SHARD_SAMPLES = 25_000
RESTARTS = 3


@dataclass
class ShardedScores:
    """What :func:`score_on_ray` gives back: ``outputs[(metric, captioner, seed)]`` as the local loop has it."""

    outputs: dict[tuple[str, str, int], MetricStatistics]
    workers: int
    shards: int
    address: str
    engine: dict[str, Any] = field(default_factory=dict)
    worker_peak_rss: list[int] = field(default_factory=list)  # bytes, per worker (not part of the run)
    tokenized: dict[str, dict[str, str]] = field(default_factory=dict)  # the workers' tokenisations, merged


def _worker_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options for the workers: an endpoints file is read here, so workers need not see the driver's files."""
    out = dict(options)
    if out.get("judge_endpoints") and isinstance(out["judge_endpoints"], str):
        from capeval.judges.endpoints import load_endpoints

        out["judge_endpoints"] = load_endpoints(out["judge_endpoints"])
    return out


def _judge_cache_actor(ray: Any, metrics: list[Metric], options: dict[str, Any]) -> tuple[Any, str] | None:
    """The single cache writer actor, pinned to the driver's node, when a judge metric uses the cache."""
    from capeval.metrics.judge import JudgeMetric

    judges = [m for m in metrics if isinstance(m, JudgeMetric) and m.config.cache != "off"]
    if not judges:
        return None
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from capeval.engine.cache_service import CacheService

    config = judges[0].config
    path = str(config.resolved_cache_path)
    node = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0, max_concurrency=8)(CacheService).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(path, config.cache_timeout)
    return actor, path


def _tokenize_in_background(dataset: Dataset, metrics: list[Metric], options: dict[str, Any]) -> Any:
    """A future of the run's PTB tokenisation when a COCO metric needs it (None otherwise): made once over the
    whole run, in the local engine's order, so every shard's tokens are the local run's."""
    from concurrent.futures import ThreadPoolExecutor

    from capeval.context import RunContext
    from capeval.metrics.coco import _CocoMetric

    if not any(isinstance(m, _CocoMetric) for m in metrics):
        return None
    context = RunContext(dataset, options)
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(lambda: {"ptb": context.tokenized("ptb")})
    pool.shutdown(wait=False)
    return future


def _get(ray: Any, refs: Any) -> Any:
    """ray.get with a worker's capeval error surfacing as itself (one line), not as a Ray traceback."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, CapevalError):
            raise CapevalError(str(cause)) from None
        raise EngineError(f"a Ray worker failed: {' '.join(str(cause or exc).split())[:400]}") from None
    except ray.exceptions.RayActorError as exc:
        raise EngineError(f"a Ray worker died: {' '.join(str(exc).split())[:300]}") from None


def score_on_ray(dataset: Dataset, metrics: list[Metric], seeds: int, options: dict[str, Any], *,
                 address: str | None = None, workers: int | None = None) -> ShardedScores:
    """Score every (metric, captioner, seed) of the run on Ray; results equal the local engine's."""
    for metric in metrics:
        shard_rule(metric)  # refuse what can't be sharded before starting anything
    if workers is not None and workers < 1:
        raise EngineError(f"--workers must be >= 1, got {workers}")
    tokenizing = _tokenize_in_background(dataset, metrics, options)  # the JVM works while Ray starts
    session = start_ray(address, num_cpus=workers)
    import ray

    actors: list[Any] = []
    cache_actor = None
    try:
        n_workers = workers or max(1, int(session.num_cpus))
        n_samples = len(dataset.sample_ids)
        n_workers = max(1, min(n_workers, n_samples))
        shards = split(dataset, max(n_workers, math.ceil(n_samples / SHARD_SAMPLES)))
        shared: dict[str, Any] = {}
        made = _judge_cache_actor(ray, metrics, options)
        if made is not None:
            from capeval.engine.cache_service import RemoteCache

            cache_actor, path = made
            shared["judge_cache"] = RemoteCache(cache_actor, path)
        from capeval.engine.shards import ShardWorker

        # a worker that dies (OOM, SIGKILL, a lost node) is restarted and its task run again; judge calls it had
        # completed are in the cache by then, so nothing paid for is asked twice
        worker_cls = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(ShardWorker)
        names = [m.name for m in metrics]
        wopts = _worker_options(options)
        threads = local_torch_threads() if any(shard_rule(m) == "whole" for m in metrics) else None
        actors = [worker_cls.remote(names, wopts, seeds, shared, threads) for _ in range(n_workers)]
        log.info("capeval: %d samples in %d shard(s) on %d Ray worker(s)", n_samples, len(shards), n_workers)
        owner = [k % n_workers for k in range(len(shards))]
        # whole-run metrics first, each on its own worker (the longest tasks start first), then the shards
        whole = [m.name for m in metrics if shard_rule(m) == "whole"]
        everything = Shard(-1, dataset.references, dataset.candidates, dataset.images)
        whole_refs = [actors[j % n_workers].run.remote(everything, [name]) for j, name in enumerate(whole)]
        run_tokens = tokenizing.result() if tokenizing is not None else {}
        stored = [ray.put(with_tokens(s, run_tokens)) for s in shards]  # sent once, read by both passes
        shard_refs = [actors[owner[k]].run.remote(stored[k]) for k in range(len(shards))]
        firsts = _get(ray, shard_refs)
        for name, out in zip(whole, _get(ray, whole_refs), strict=True):
            firsts[0]["pieces"].update({key: p for key, p in out["pieces"].items() if key[0] == name})
            firsts.append({"pieces": {}, "cider_df": {}, "cider_docs": {}, "tokenized": out.get("tokenized", {})})
        cider_values: dict[str, list[dict[str, np.ndarray]]] = {}
        cider = [m for m in metrics if shard_rule(m) == "cider"]
        if cider:
            df, docs = cider_totals(firsts, dataset.captioners)
            df_ref = ray.put(df)
            seconds = _get(ray, [actors[owner[k]].cider.remote(stored[k], df_ref, docs) for k in range(len(shards))])
            cider_values[cider[0].name] = seconds
        outputs = _join(dataset, metrics, seeds, firsts, cider_values)
        tokenized: dict[str, dict[str, str]] = {name: dict(tok) for name, tok in run_tokens.items()}
        for f in firsts:
            for name, tok in f.get("tokenized", {}).items():
                tokenized.setdefault(name, {}).update(tok)
        peaks = _get(ray, [a.peak_rss.remote() for a in actors])
        log.info("capeval: Ray workers' peak RSS %s MB", [round(p / 2**20) for p in peaks])
        return ShardedScores(outputs, n_workers, len(shards), session.address,
                             {"name": "ray", "workers": n_workers, "shards": len(shards)}, worker_peak_rss=peaks,
                             tokenized=tokenized)
    finally:
        for actor in [*actors, *([cache_actor] if cache_actor is not None else [])]:
            with contextlib.suppress(Exception):  # a dead worker has nothing left to close
                ray.get(actor.close.remote(), timeout=60)
        stop_ray(session)


def _join(dataset: Dataset, metrics: list[Metric], seeds: int, firsts: list[dict[str, Any]],
          cider_values: dict[str, list[dict[str, np.ndarray]]]) -> dict[tuple[str, str, int], MetricStatistics]:
    """Shard pieces joined per (metric, captioner, seed) in sample order: what ``metric.statistics`` of the
    whole batch gives (CIDEr-D's per-sample values from the second pass)."""
    import pandas as pd

    outputs: dict[tuple[str, str, int], MetricStatistics] = {}
    for metric in metrics:
        rule = shard_rule(metric)
        for cap in dataset.captioners:
            ids = dataset.ids_for(cap)
            for seed in range(seeds) if metric.stochastic else (0,):
                pieces: list[Piece] = [f["pieces"][(metric.name, cap, seed)] for f in firsts
                                       if (metric.name, cap, seed) in f["pieces"]]
                values = {key: np.concatenate([p.values[key] for p in pieces]) if pieces else np.zeros(0)
                          for key in metric.outputs}
                if rule == "cider":
                    parts = [c[cap] for c in cider_values[metric.name] if cap in c]
                    values = {"cider": np.concatenate(parts) if parts else np.zeros(0)}
                table = (pd.concat([p.table for p in pieces], ignore_index=True) if pieces
                         else pd.DataFrame())
                if rule == "cider" and len(table):
                    table["cider"] = values["cider"]  # the whole set's document frequencies, as the rule expects
                failures: dict[str, int] = {}
                usage: dict[str, float] = {}
                details: dict[str, list[str | None]] = {}
                for p in pieces:
                    for k, v in p.failures.items():
                        failures[k] = failures.get(k, 0) + int(v)
                    for k, v in p.usage.items():
                        usage[k] = usage.get(k, 0) + v
                    for k, texts in p.details.items():
                        details.setdefault(k, []).extend(texts)
                outputs[(metric.name, cap, seed)] = MetricStatistics(list(ids), table, values, failures, details,
                                                                     usage)
    return outputs
