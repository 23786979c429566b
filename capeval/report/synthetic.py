"""A synthetic run directory (random captions and scores) for sizing and timing the report on large runs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from capeval.api import Results
from capeval.io.align import Dataset

WORDS = ["a", "man", "woman", "dog", "cat", "red", "blue", "green", "small", "large", "sitting", "standing", "on",
         "in", "next", "to", "the", "table", "street", "field", "with", "holding", "riding", "bike", "horse", "car",
         "tree", "building", "water", "beach", "snow", "kitchen", "plate", "food", "window", "two", "three",
         "people", "group", "child", "ball", "grass", "wall", "road", "sign", "train", "bus", "sky"]
METRICS = ("rouge_l", "cider_like", "bertscore_like", "capture_like", "clair_like", "spice_like", "judge_like")


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(6, 14)))).capitalize() + "."


def synthetic_results(n_samples: int, n_captioners: int, *, n_refs: int = 5, metrics: tuple[str, ...] = METRICS,
                      seed: int = 0, details: bool = False) -> Results:
    """Results with random captions and per-sample scores in [0, 1] (NOT a real evaluation: for sizing only).

    Every metric is declared per-sample (not corpus-level), so its corpus score is the mean of its samples.
    ``details`` adds a judge-style reason for every sample of the last metric.
    """
    rng = np.random.default_rng(seed)
    ids = [str(100000 + k) for k in range(n_samples)]
    refs = {i: [_sentence(rng) for _ in range(n_refs)] for i in ids}
    caps = {f"captioner_{c:02d}": {i: _sentence(rng) for i in ids} for c in range(n_captioners)}
    frames, corpus_rows = [], []
    for c, name in enumerate(caps):
        for m in metrics:
            values = np.clip(rng.normal(0.3 + 0.03 * c, 0.15, size=n_samples), 0, 1)
            frames.append(pd.DataFrame({"captioner": name, "sample_id": ids, "metric": m, "seed": 0,
                                        "value": values}))
            corpus_rows.append({"captioner": name, "metric": m, "seed": 0, "value": float(values.mean())})
    detail_frame = None
    if details:
        detail_frame = pd.concat([
            pd.DataFrame({"captioner": name, "sample_id": ids, "metric": metrics[-1], "seed": 0,
                          "detail": [f"The caption mentions {rng.choice(WORDS)} but misses {rng.choice(WORDS)}."
                                     for _ in ids]})
            for name in caps], ignore_index=True)
    info = {m: {"outputs": [m], "version": "1", "stochastic": False, "corpus_level": False, "aggregation": "mean",
                "needs": ["references"], "higher_is_better": True} for m in metrics}
    samples = pd.concat(frames, ignore_index=True)
    statistics = {m: samples[samples["metric"] == m].rename(columns={"value": m})[["captioner", "seed", "sample_id", m]]
                  .reset_index(drop=True) for m in metrics}
    now = time.time()
    return Results(
        dataset=Dataset(references=refs, candidates=caps),
        samples=samples,
        statistics=statistics,
        corpus=pd.DataFrame(corpus_rows, columns=["captioner", "metric", "seed", "value"]),
        signatures={m: f"{m}|synthetic:yes|seed:{seed}" for m in metrics},
        metric_info=info,
        inputs={"references": {"path": "<synthetic>"}, "candidates": {n: {"path": "<synthetic>"} for n in caps}},
        details=detail_frame,
        started=now,
        finished=now,
    )


def write_synthetic_run(path: str | Path, n_samples: int, n_captioners: int, **kwargs) -> Path:
    """Write :func:`synthetic_results` as a run directory."""
    return synthetic_results(n_samples, n_captioners, **kwargs).write(Path(path), command=["synthetic"])
