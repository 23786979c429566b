"""Score meta-evaluation captions through ``capeval.evaluate`` so every registered metric takes part.

Meta-evaluation corpora rate several candidates per image, while ``evaluate`` takes one caption per id and
captioner. Each unit to score gets a synthetic sample id (``"{key}#{k}"``) whose references are its image's
references; the caller maps rows (one per human rating) back to those ids. Stochastic metrics (LLM judges)
run once per seed and a sample's score is the mean over seeds; judge calls go through the judge client and
its cache, so an interrupted meta-evaluation resumes without repeating completed calls.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval.io.readers import CaptionFile

log = logging.getLogger("capeval")


@dataclass
class Scores:
    """Per-sample and per-captioner scores of one scoring pass, averaged over seeds.

    ``per_sample[output]`` is a Series indexed by (captioner, sample_id); ``corpus[output]`` maps a captioner to
    its corpus score (corpus BLEU, METEOR's aggregate, else the mean) as ``capeval score`` reports it.
    """

    per_sample: dict[str, pd.Series]
    corpus: dict[str, dict[str, float]]
    signatures: dict[str, str]
    higher_is_better: dict[str, bool]
    stochastic: dict[str, bool] = field(default_factory=dict)
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def outputs(self) -> list[str]:
        """Output keys (``bleu_1`` .. ``cider``, ``bertscore`` ...) in scoring order."""
        return list(self.per_sample)

    def values(self, output: str, captioner: str, sample_ids: Sequence[str]) -> np.ndarray:
        """Scores of ``sample_ids`` for one captioner, NaN where the metric failed."""
        series = self.per_sample[output]
        return series.reindex(pd.MultiIndex.from_arrays([[captioner] * len(sample_ids), list(sample_ids)]))\
            .to_numpy(dtype=float)


def resolve_images(images: Mapping[str, str], images_dir: str | Path | None) -> dict[str, str]:
    """Image paths for image-based metrics, found under ``images_dir``.

    A dataset path is tried as given under ``images_dir``, then with the ``Flicker8k`` misspelling of the
    Flickr8k-CF file fixed, then as its bare file name. Without an images folder no image is attached
    (image-free metrics don't need one); images that can't be found are counted in a warning.
    """
    if not images_dir:
        return {}
    base = Path(images_dir)
    out, missing = {}, 0
    for sid, rel in images.items():
        tries = [base / rel, base / rel.replace("Flicker8k", "Flickr8k"), base / Path(rel).name]
        found = next((p for p in tries if p.exists()), None)
        missing += found is None
        out[sid] = str(found or tries[-1])
    if missing:
        log.warning("%d of %d images not found under %s", missing, len(images), base)
    return out


def score(
    references: Mapping[str, Sequence[str]],
    candidates: Mapping[str, Mapping[str, str]],
    metrics: Sequence[str],
    *,
    images: Mapping[str, str] | None = None,
    options: dict[str, Any] | None = None,
    seeds: int = 1,
    progress: bool | None = False,
    label: str = "<meta-eval>",
) -> Scores:
    """Run ``capeval.evaluate`` on synthetic ids and collect seed-averaged scores.

    Args:
        references: ``{sample_id: [ref, ...]}``.
        candidates: ``{captioner: {sample_id: caption}}``.
        metrics: registered metric names.
        images: ``{sample_id: image path}`` for image-based metrics.
        options: metric options, as for ``capeval score``.
        seeds: runs of each stochastic metric; a sample's score is the mean over seeds.
        progress: show a progress bar (None: on a terminal).
        label: the name used for the in-memory inputs in messages.
    """
    from capeval.api import evaluate

    ref_file = CaptionFile(label, {k: list(v) for k, v in references.items()}, "untyped",
                           images=dict(images or {}))
    cand_files = {name: CaptionFile(f"{label}:{name}", {k: [v] for k, v in cands.items()}, "untyped")
                  for name, cands in candidates.items()}
    start = time.perf_counter()
    results = evaluate(ref_file, cand_files, metrics, seeds=seeds, options=dict(options or {}),
                       progress=progress)

    samples = results.samples
    per_sample: dict[str, pd.Series] = {}
    for output, grp in samples.groupby("metric", sort=False):
        # mean over seeds; a sample that failed on every seed stays NaN
        per_sample[str(output)] = grp.groupby(["captioner", "sample_id"], sort=False)["value"].mean()
    corpus: dict[str, dict[str, float]] = {}
    for (cap, output), grp in results.corpus.groupby(["captioner", "metric"], sort=False):
        with warnings.catch_warnings():  # a captioner that failed on every seed keeps NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            corpus.setdefault(str(output), {})[str(cap)] = float(np.nanmean(grp["value"].to_numpy(dtype=float)))
    seconds = time.perf_counter() - start
    higher: dict[str, bool] = {}
    stochastic: dict[str, bool] = {}
    owner: dict[str, str] = {}
    for name, info in results.metric_info.items():
        for output in info["outputs"]:
            higher[output] = bool(info["higher_is_better"])
            stochastic[output] = bool(info["stochastic"])
            owner[output] = name
    return Scores(per_sample=per_sample, corpus=corpus, signatures=dict(results.signatures),
                  higher_is_better=higher, stochastic=stochastic, usage=dict(results.usage), owner=owner,
                  seconds=seconds)
