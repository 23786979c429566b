"""The meta-evaluation protocols of the caption-metric literature, one function per corpus.

* Flickr8k-Expert / Flickr8k-CF (Hodosh et al., 2013), as CLIPScore (Hessel et al., 2021) and PAC-S
  (Sarto et al., 2023) run them: every human rating is a row (a caption rated by three experts is three
  rows), each candidate is scored against all of its image's references, and Kendall tau-b and tau-c are
  taken between metric scores and ratings over all rows.
* Pascal-50S (Vedantam et al., 2015): for each pair, does the metric prefer the caption the human majority
  preferred? Accuracy per category (HC, HI, HM, MM) and the mean of the four.
* THumB 1.0 (Kasai et al., 2022): Pearson and Kendall tau-b between metric scores and THumB's human score
  over all captions (segment level) and over the systems' mean scores (system level), with and without the
  ``Human`` system.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from capeval.metaeval import bootstrap as boot
from capeval.metaeval import correlate, scoring
from capeval.metaeval.loaders import PairsData, RatingsData, SystemsData

HUMAN_SYSTEM = "Human"

log = logging.getLogger("capeval")


def _warn_unscored(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Say so when a metric output scored nothing (e.g. ``pairwise``, which needs two captioners)."""
    for output, fields in results.items():
        if fields.get("n") == 0:
            log.warning("meta-eval: %s could not score any caption (%d failed); its correlations are undefined",
                        output, fields.get("failed", 0))
    return results


def _unit_ids(keys_and_captions: Sequence[tuple[str, str]]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Synthetic sample ids: one per unique (key, caption), ``"{key}#{k}"``.

    Returns the id of every input row, ``{id: caption}`` and ``{id: key}``.
    """
    ids: dict[tuple[str, str], str] = {}
    per_key: dict[str, int] = {}
    row_ids: list[str] = []
    for key, caption in keys_and_captions:
        uid = ids.get((key, caption))
        if uid is None:
            k = per_key.get(key, 0)
            per_key[key] = k + 1
            uid = ids[(key, caption)] = f"{key}#{k}"
        row_ids.append(uid)
    captions = {uid: caption for (key, caption), uid in ids.items()}
    owner = {uid: key for (key, caption), uid in ids.items()}
    return row_ids, captions, owner


def _signature_fields(scores: scoring.Scores, output: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if output in scores.signatures:
        out["signature"] = scores.signatures[output]
    return out


def _resamples(scores: scoring.Scores, output: str, bootstrap: int | None) -> int:
    """Bootstrap resamples for an output: as asked, else 1,000 for judge (stochastic) metrics, else none."""
    if bootstrap is not None:
        return max(0, int(bootstrap))
    return boot.DEFAULT_RESAMPLES if scores.stochastic.get(output) else 0


def _cost_fields(scores: scoring.Scores, output: str) -> dict[str, Any]:
    """The judge's cost of the metric behind ``output``: calls, tokens (evaluated vs cached), USD, seconds."""
    usage = scores.usage.get(scores.owner.get(output, ""), {})
    if not usage or "judge_requests" not in usage:
        return {}
    keep = ("judge_calls", "judge_cache_hits", "judge_errors", "prompt_tokens", "cached_prompt_tokens",
            "completion_tokens", "cost_usd")
    cost = {k: usage[k] for k in keep if k in usage}
    cost["seconds"] = round(scores.seconds, 1)
    return {"cost": cost}


def flickr8k(data: RatingsData, metrics: Sequence[str], *, options: dict[str, Any] | None = None,
             seeds: int = 1, progress: bool | None = False, bootstrap: int | None = None,
             ci_seed: int = 0) -> dict[str, dict[str, Any]]:
    """Kendall tau-b and tau-c (x100) over all rated rows; ``n`` rows used, ``failed`` rows without a score.

    Each unique (image, caption) is scored once and its score repeated for each of its ratings. With
    ``bootstrap`` resamples (default: 1,000 for judge metrics) ``tau_b_ci`` / ``tau_c_ci`` hold 95% percentile
    intervals, resampling images (see :mod:`capeval.metaeval.bootstrap`); judge metrics report ``cost``.
    """
    options = dict(options or {})
    row_ids, captions, owner = _unit_ids([(r.key, r.caption) for r in data.rows])
    refs = {uid: data.references[key] for uid, key in owner.items()}
    images = scoring.resolve_images({uid: data.images[key] for uid, key in owner.items() if key in data.images},
                                    options.get("images"))
    scores = scoring.score(refs, {"meta": captions}, metrics, images=images, options=options, seeds=seeds,
                           progress=progress, label=data.path)
    human = np.asarray([r.rating for r in data.rows], dtype=float)
    clusters = np.asarray([r.key for r in data.rows])
    results: dict[str, dict[str, Any]] = {}
    for output in scores.outputs:
        values = scores.values(output, "meta", row_ids)
        ok = np.isfinite(values)
        entry: dict[str, Any] = {
            "tau_b": correlate.kendall(values[ok], human[ok], "b"),
            "tau_c": correlate.kendall(values[ok], human[ok], "c"),
        }
        resamples = _resamples(scores, output, bootstrap)
        if resamples:
            ci = boot.kendall_ci(values[ok], human[ok], clusters[ok], resamples=resamples, seed=ci_seed)
            entry.update({"tau_b_ci": ci["b"], "tau_c_ci": ci["c"], "ci_resamples": resamples})
        entry.update({"n": int(ok.sum()), "images": len(set(clusters[ok].tolist())), "failed": int((~ok).sum()),
                      **_cost_fields(scores, output), **_signature_fields(scores, output)})
        results[output] = entry
    return _warn_unscored(results)


def pascal50s(data: PairsData, metrics: Sequence[str], *, options: dict[str, Any] | None = None,
              seeds: int = 1, progress: bool | None = False, bootstrap: int | None = None,
              ci_seed: int = 0) -> dict[str, dict[str, Any]]:
    """Accuracy (x100) per category and their mean (``accuracy``); ties earn half a point.

    ``n`` pairs used, ``ties`` pairs the metric scored equal, ``failed`` pairs with a caption it could not score.
    With ``bootstrap`` resamples (default: 1,000 for judge metrics) ``accuracy_ci`` is a 95% percentile
    interval (pairs resampled within their category); judge metrics report ``cost``.
    """
    options = dict(options or {})
    keys = [f"{p.category}/{p.index}" for p in data.pairs]
    units = [(key, p.captions[j]) for key, p in zip(keys, data.pairs, strict=True) for j in (0, 1)]
    row_ids, captions, owner = _unit_ids(units)
    by_key = dict(zip(keys, data.pairs, strict=True))
    refs = {uid: list(by_key[key].references) for uid, key in owner.items()}
    images = scoring.resolve_images({uid: by_key[key].image for uid, key in owner.items() if by_key[key].image},
                                    options.get("images"))
    scores = scoring.score(refs, {"meta": captions}, metrics, images=images, options=options, seeds=seeds,
                           progress=progress, label=data.path)
    ids_a, ids_b = row_ids[0::2], row_ids[1::2]
    labels = np.asarray([p.label for p in data.pairs], dtype=int)
    categories = np.asarray([p.category for p in data.pairs])
    results: dict[str, dict[str, Any]] = {}
    for output in scores.outputs:
        a = scores.values(output, "meta", ids_a)
        b = scores.values(output, "meta", ids_b)
        ok = np.isfinite(a) & np.isfinite(b)
        higher = scores.higher_is_better.get(output, True)
        entry: dict[str, Any] = {}
        accs, ties = [], 0
        for cat in data.categories:
            sel = ok & (categories == cat)
            acc, n_ties = correlate.pairwise_accuracy(a[sel], b[sel], labels[sel], higher)
            entry[cat] = acc
            ties += n_ties
            if acc is not None:
                accs.append(acc)
        head: dict[str, Any] = {"accuracy": float(np.mean(accs)) if accs else None}
        resamples = _resamples(scores, output, bootstrap)
        if resamples:
            sa, sb = (a, b) if higher else (-a, -b)
            correct = np.where(sa == sb, 0.5, ((sb > sa) == (labels == 1)).astype(float))
            head["accuracy_ci"] = boot.pairwise_ci(correct[ok], categories[ok], resamples=resamples, seed=ci_seed)
            head["ci_resamples"] = resamples
        entry = {**head, **entry, "n": int(ok.sum()), "ties": ties, "failed": int((~ok).sum()),
                 **_cost_fields(scores, output), **_signature_fields(scores, output)}
        results[output] = entry
    return _warn_unscored(results)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _system_level(scores: scoring.Scores, output: str, data: SystemsData, systems: list[str]) -> dict[str, Any]:
    human_means = [float(np.mean([r.score for r in data.rows if r.system == s])) for s in systems]
    metric_scores = [scores.corpus.get(output, {}).get(s, float("nan")) for s in systems]
    ok = [i for i, v in enumerate(metric_scores) if np.isfinite(v)]
    x = [metric_scores[i] for i in ok]
    y = [human_means[i] for i in ok]
    return {"pearson": correlate.pearson(x, y), "kendall": correlate.kendall(x, y, "b"), "n": len(ok)}


def thumb(data: SystemsData, metrics: Sequence[str], *, options: dict[str, Any] | None = None,
          seeds: int = 1, progress: bool | None = False) -> dict[str, dict[str, Any]]:
    """Segment- and system-level Pearson and Kendall tau-b (x100) with THumB's ``human_score``.

    Each system is scored as its own captioner against the segment's references (as ``capeval score`` does),
    so a system's score is the one ``capeval score`` reports. Fields without a suffix use every system;
    ``*_machine`` fields leave out the ``Human`` system (present only when the data has one).
    """
    options = dict(options or {})
    candidates: dict[str, dict[str, str]] = {}
    images: dict[str, str] = {}
    for r in data.rows:
        candidates.setdefault(r.system, {})[r.seg_id] = r.caption
        if r.image:
            images.setdefault(r.seg_id, r.image)
    used = {r.seg_id for r in data.rows}
    refs = {seg: data.references[seg] for seg in data.references if seg in used}
    scores = scoring.score(refs, candidates, metrics, images=scoring.resolve_images(images, options.get("images")),
                           options=options, seeds=seeds, progress=progress, label=data.refs_path)
    systems = data.systems
    machine = [s for s in systems if s != HUMAN_SYSTEM]
    human = np.asarray([r.score for r in data.rows], dtype=float)
    is_machine = np.asarray([r.system != HUMAN_SYSTEM for r in data.rows])
    rows_by_system: dict[str, list[int]] = {}
    for i, r in enumerate(data.rows):
        rows_by_system.setdefault(r.system, []).append(i)
    results: dict[str, dict[str, Any]] = {}
    for output in scores.outputs:
        values = np.full(len(data.rows), np.nan)
        for system, positions in rows_by_system.items():
            values[positions] = scores.values(output, system, [data.rows[i].seg_id for i in positions])
        ok = np.isfinite(values)
        sys_all = _system_level(scores, output, data, systems)
        entry: dict[str, Any] = {
            "pearson": correlate.pearson(values[ok], human[ok]),
            "kendall": correlate.kendall(values[ok], human[ok], "b"),
            "n": int(ok.sum()),
            "system_pearson": sys_all["pearson"],
            "system_kendall": sys_all["kendall"],
            "systems": sys_all["n"],
        }
        if len(machine) < len(systems):
            sel = ok & is_machine
            sys_m = _system_level(scores, output, data, machine)
            entry.update({
                "pearson_machine": correlate.pearson(values[sel], human[sel]),
                "kendall_machine": correlate.kendall(values[sel], human[sel], "b"),
                "n_machine": int(sel.sum()),
                "system_pearson_machine": sys_m["pearson"],
                "system_kendall_machine": sys_m["kendall"],
            })
        entry["failed"] = int((~ok).sum())
        entry["system_scores"] = {s: _finite(scores.corpus.get(output, {}).get(s)) for s in systems}
        entry.update(_signature_fields(scores, output))
        results[output] = entry
    return _warn_unscored(results)
