"""Reading run directories of capeval 0.1.0 (format version 1), which stored scores but no statistics.

On load the manifest's metrics get their aggregation rule (the built-in metrics' rules; ``mean`` for any
other per-sample metric). Statistics are then recomputed on first use, with a notice: a ``mean`` metric's
statistics are its stored per-sample values; BLEU, METEOR and CIDEr-D are re-scored from the stored captions
and references by the metric itself (this needs Java, as scoring did). A corpus-level metric with no known
rule (e.g. proxy QA, whose per-question outcomes 0.1.0 did not store) is refused with the reason.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from capeval.errors import CapevalError

if TYPE_CHECKING:
    from capeval.rundir import Run

log = logging.getLogger("capeval")

LEGACY_RULES = {"bleu": "bleu", "meteor": "meteor", "cider": "cider-d", "spice": "mean"}
RESCORED = frozenset({"bleu", "meteor", "cider"})
NO_STATISTICS = frozenset({"proxy_qa"})


def upgrade(run: Run) -> None:
    """Give a format-1 run's metrics their aggregation rules, in memory."""
    log.info("%s: run written by capeval %s (format 1, no stored statistics); statistics are recomputed "
             "when needed — re-score with this capeval to avoid it", run.path, run.manifest.get("capeval_version"))
    for name, info in run.manifest.get("metrics", {}).items():
        info.setdefault("output_info", legacy_output_info(name, info.get("outputs", [name]), info))
        if not info.get("aggregation"):
            if name in NO_STATISTICS:
                info["aggregation"] = None
            else:
                info["aggregation"] = LEGACY_RULES.get(name, "mean" if not info.get("corpus_level") else None)


def legacy_output_info(name: str, outputs: list[str], info: dict) -> dict[str, dict]:
    """Display name, scale and direction of the outputs of a metric in a 0.1.0 manifest: the registered metric's
    own metadata (the manifest's direction wins), or the output key at scale 1 for a metric not registered here."""
    from capeval.errors import UnknownMetric
    from capeval.registry import get_metric_class

    try:
        cls = get_metric_class(name)
    except (UnknownMetric, ImportError):
        cls = None
    out = {}
    for key in outputs:
        meta = cls.output_info(key).as_dict() if cls is not None else {"display": key, "scale": 1.0}
        meta["higher_is_better"] = bool(info.get("higher_is_better", True))
        meta["aggregation"] = "corpus" if info.get("corpus_level") else "mean"
        out[key] = meta
    return out


def _mean_table(run: Run, outputs: list[str]) -> pd.DataFrame:
    sub = run.scores[run.scores["metric"].isin(outputs)]
    table = sub.pivot_table(index=["captioner", "seed", "sample_id"], columns="metric", values="value",
                            aggfunc="first", dropna=False).reset_index()
    table.columns.name = None
    return table[["captioner", "seed", "sample_id", *outputs]]


def recompute_statistics(run: Run, metric: str) -> pd.DataFrame:
    """The statistics table of ``metric`` for a format-1 run (see the module docstring)."""
    info = run.manifest.get("metrics", {}).get(metric)
    if info is None:
        raise CapevalError(f"{run.path}: no metric {metric!r} in this run")
    rule = info.get("aggregation")
    outputs = list(info.get("outputs", [metric]))
    if rule is None:
        raise CapevalError(f"{run.path}: run written by capeval {run.manifest.get('capeval_version')} holds no "
                           f"per-sample statistics of {metric}; re-score it with capeval to get intervals and tests")
    if metric not in RESCORED:
        log.warning("%s: capeval 0.1.0 run: %s statistics taken from its per-sample scores", run.path, metric)
        return _mean_table(run, outputs)
    log.warning("%s: capeval 0.1.0 run: re-scoring %s from the stored captions to get its statistics",
                run.path, metric)
    return _rescore(run, metric)


def _rescore(run: Run, metric: str) -> pd.DataFrame:
    from capeval.api import _batch
    from capeval.context import RunContext
    from capeval.io.align import Dataset
    from capeval.registry import get_metric_class

    candidates = {str(cap): dict(zip(grp["sample_id"].astype(str), grp["caption"], strict=True))
                  for cap, grp in run.captions.groupby("captioner", sort=False)}
    dataset = Dataset(references={str(k): list(v) for k, v in run.references.items()}, candidates=candidates)
    context = RunContext(dataset, {})
    obj = get_metric_class(metric).from_options({})
    frames = []
    try:
        obj.setup(context)
        for cap in dataset.captioners:
            batch = _batch(dataset, cap)
            st = obj.statistics(batch, context, 0)
            table = st.table.reset_index(drop=True).copy()
            table.insert(0, "sample_id", list(st.sample_ids))
            table.insert(0, "seed", 0)
            table.insert(0, "captioner", cap)
            frames.append(table)
    finally:
        obj.close()
    return pd.concat(frames, ignore_index=True)
