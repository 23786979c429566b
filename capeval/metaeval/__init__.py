"""Meta-evaluation: how well each capeval metric agrees with human judgments of captions.

Runs the protocols of the caption-metric literature (CLIPScore, PAC-S, THumB) on Flickr8k-Expert,
Flickr8k-CF, Pascal-50S and THumB 1.0, scoring through :func:`capeval.evaluate` so every registered metric
(COCO metrics, BERTScore, CAPTURE, LLM judges) takes part. See ``datasets/*.md`` for each corpus.

Example:
    >>> from capeval.metaeval import meta_evaluate
    >>> r = meta_evaluate("flickr8k-expert", "flickr8k_expert.json", ["cider"])  # doctest: +SKIP
    >>> r["cider"]["tau_c"]  # doctest: +SKIP
    43.891...
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError

DATASETS = ("flickr8k-expert", "flickr8k-cf", "pascal-50s", "thumb")
DEFAULT_METRICS = ("bleu", "meteor", "rouge_l", "cider")

_ALIASES = {
    "flickr8k-ex": "flickr8k-expert", "flickr8k": "flickr8k-expert", "expert": "flickr8k-expert",
    "cf": "flickr8k-cf", "crowdflower": "flickr8k-cf", "flickr8k-crowdflower": "flickr8k-cf",
    "pascal50s": "pascal-50s", "pascal": "pascal-50s", "thumb-1.0": "thumb", "thumb1": "thumb",
}


def canonical_dataset(name: str) -> str:
    """The canonical dataset name (``flickr8k_expert`` and ``Pascal-50S`` are accepted too)."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise CapevalError(f"unknown meta-evaluation dataset {name!r}; known: {', '.join(DATASETS)}")
    return key


def meta_evaluate(
    dataset: str,
    path: str | Path,
    metrics: Sequence[str] = DEFAULT_METRICS,
    options: dict[str, Any] | None = None,
    *,
    refs: str | Path | None = None,
    seeds: int = 1,
    progress: bool | None = False,
    limit: int | None = None,
    sample_seed: int = 0,
    bootstrap: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Score a human-judgment corpus with ``metrics`` and measure agreement with the humans.

    Args:
        dataset: ``flickr8k-expert``, ``flickr8k-cf``, ``pascal-50s`` or ``thumb``.
        path: the corpus file (for THumB the scores JSONL).
        metrics: registered metric names; every output of each is reported (``bleu`` gives ``bleu_1`` ..).
        options: metric options as for ``capeval score`` (``bertscore_model``, ``judge_model``, ``images`` ...).
        refs: THumB references JSONL (default: ``mscoco_references.jsonl`` beside ``path``).
        seeds: runs of each stochastic metric; a caption's score is the mean over seeds.
        progress: show a progress bar (None: on a terminal).
        limit: score a seeded subset only: Flickr8k at least ``limit`` rows in whole images, Pascal-50S
            ``limit`` pairs stratified over categories (:mod:`capeval.metaeval.sampling`; not for THumB).
        sample_seed: the subset's seed.
        bootstrap: resamples for 95% CIs (``*_ci`` fields); None: 1,000 for judge metrics, none otherwise.

    Returns:
        ``{output: fields}``; all correlations and accuracies x100, ``None`` when undefined.
        Flickr8k: ``tau_b``, ``tau_c``, ``n`` (rows used), ``failed``.
        Pascal-50S: ``accuracy`` (mean of categories), ``HC``, ``HI``, ``HM``, ``MM``, ``n``, ``ties``, ``failed``.
        THumB: ``pearson``, ``kendall``, ``n``, ``system_pearson``, ``system_kendall``, ``systems``, the same
        ``*_machine`` without the Human system, ``system_scores``, ``failed``.
        Each entry carries the metric's ``signature``.
    """
    from capeval.metaeval import loaders, protocols

    name = canonical_dataset(dataset)
    if seeds < 1:
        raise CapevalError(f"seeds must be >= 1, got {seeds}")
    kwargs: dict[str, Any] = {"options": options, "seeds": seeds, "progress": progress}
    ci: dict[str, Any] = {"bootstrap": bootstrap, "ci_seed": sample_seed}
    if limit is not None and name == "thumb":
        raise CapevalError("--limit is for flickr8k-expert, flickr8k-cf and pascal-50s")
    if refs is not None and name != "thumb":
        raise CapevalError(f"--refs is for THumB; {name} carries its references in {path}")
    metrics = list(metrics)
    from capeval.api import build_metrics

    build_metrics(metrics, dict(options or {}))  # an unknown or unavailable metric fails before any scoring
    from capeval.metaeval import sampling

    if name in ("flickr8k-expert", "flickr8k-cf"):
        ratings = loaders.load_flickr8k(path)
        if limit is not None:
            ratings = sampling.sample_ratings(ratings, limit, sample_seed)
        return protocols.flickr8k(ratings, metrics, **kwargs, **ci)
    if name == "pascal-50s":
        pairs = loaders.load_pascal50s(path)
        if limit is not None:
            pairs = sampling.sample_pairs(pairs, limit, sample_seed)
        return protocols.pascal50s(pairs, metrics, **kwargs, **ci)
    return protocols.thumb(loaders.load_thumb(path, refs), metrics, **kwargs)


__all__ = ["DATASETS", "DEFAULT_METRICS", "canonical_dataset", "meta_evaluate"]
