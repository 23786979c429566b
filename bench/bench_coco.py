"""Benchmark: `capeval score` (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) vs pycocoevalcap's scorers called directly.

Both run in this process on the same inputs, each starting its own JVMs, and the largest |difference| of any
per-sample or corpus score is printed with the time ratio (capeval / direct). Issue 17's targets: with all
seven outputs <= 0.7x on THumB and <= 0.6x on Flickr8k-Expert; with ``--metrics bleu,rouge_l,cider`` <= 0.5x.

``--breakdown`` then runs capeval once more with timers around its parts and prints where the wall time goes:
the PTB JVM pass, BLEU/ROUGE-L/CIDEr-D, METEOR (scored in a background thread; its JVM's table load, timed on
its own, is the floor), the time the run waited for METEOR after everything else, and the rest (reading,
aligning, writing nothing: ``evaluate`` only).

    python bench/bench_coco.py [--shared ../shared/data] [--datasets thumb,flickr8k] [--metrics bleu,rouge_l,cider]
                               [--breakdown]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
from pycocoevalcap.meteor.meteor import Meteor
from thumb_data import load_thumb

import capeval
from capeval.reference import score_direct

KEYS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]
ALL = ("bleu", "meteor", "rouge_l", "cider")
METRICS = list(ALL)  # set by --metrics


def thumb(shared: Path):
    """THumB 1.0: 500 images x 5 captioners, 4 references each."""
    return load_thumb(folder=shared / "thumb")


def flickr8k(shared: Path):
    """Flickr8k-Expert: 16,992 candidate rows (one id per row), 5 references each."""
    data = json.loads((shared / "human-judgments" / "flickr8k_expert.json").read_text())
    refs, cands = {}, {}
    for key, item in data.items():
        for i, judgement in enumerate(item["human_judgement"]):
            sid = f"{key}#{i}"
            refs[sid] = item["ground_truth"]
            cands[sid] = judgement["caption"]
    return refs, {"expert": cands}


def _keys() -> list[str]:
    return [k for k in KEYS if k.split("_")[0] in METRICS or k in METRICS]


def _time_capeval(refs, systems):
    t0 = time.perf_counter()
    results = capeval.evaluate(refs, systems, metrics=METRICS)
    return time.perf_counter() - t0, results


def _direct_subset(refs, cands):
    """pycocoevalcap's tokenizer and the chosen scorers only (no METEOR JVM)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from capeval.reference import tokenize

    gts, res = tokenize(refs, cands)
    out = {}
    if "bleu" in METRICS:
        with contextlib.redirect_stdout(io.StringIO()):
            corpus, per = Bleu(4).compute_score(gts, res, verbose=0)
        out.update({f"bleu_{k + 1}": (corpus[k], list(per[k])) for k in range(4)})
    if "rouge_l" in METRICS:
        out["rouge_l"] = tuple(Rouge().compute_score(gts, res))
    if "cider" in METRICS:
        out["cider"] = tuple(Cider().compute_score(gts, res))
    return out


def _time_direct(refs, systems):
    t0 = time.perf_counter()
    if "meteor" in METRICS:
        meteor = Meteor()
        direct = {sys_name: score_direct(refs, cands, meteor=meteor) for sys_name, cands in systems.items()}
        del meteor
    else:
        direct = {sys_name: _direct_subset(refs, cands) for sys_name, cands in systems.items()}
    return time.perf_counter() - t0, direct


class _Timers:
    """Wall-clock intervals of wrapped functions, by label (thread-safe)."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def wrap(self, owner, attr: str, label: str):
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with self._lock:
                    self.spans.setdefault(label, []).append((t0, time.perf_counter()))

        setattr(owner, attr, timed)
        return original

    def total(self, label: str) -> float:
        return sum(b - a for a, b in self.spans.get(label, []))

    def end(self, label: str) -> float:
        return max((b for _, b in self.spans.get(label, [])), default=0.0)


def jvm_table_load_seconds() -> float:
    """Seconds from starting METEOR's JVM to its first scored segment (the paraphrase-table load)."""
    from capeval.metrics.meteor_process import MeteorProcess

    t0 = time.perf_counter()
    process = MeteorProcess()
    process.start()
    process.score_segments(["a dog runs"], [["a dog is running"]])
    seconds = time.perf_counter() - t0
    process.close()
    return seconds


def breakdown(name: str, refs, systems) -> None:
    """Where capeval's wall time goes (one timed ``evaluate``)."""
    import capeval.tokenizers.ptb as ptb
    from capeval.metrics import coco

    timers = _Timers()
    restore = [(ptb, "tokenize_ptb", timers.wrap(ptb, "tokenize_ptb", "ptb"))]
    for cls, label in ((coco.Bleu, "kernels"), (coco.RougeL, "kernels"), (coco.CiderD, "kernels"),
                       (coco.Meteor, "meteor")):
        restore.append((cls, "statistics", timers.wrap(cls, "statistics", label)))
    try:
        t0 = time.perf_counter()
        capeval.evaluate(refs, systems, metrics=METRICS)
        total = time.perf_counter() - t0
    finally:
        for owner, attr, original in restore:
            setattr(owner, attr, original)
    ptb_s, kernels = timers.total("ptb"), timers.total("kernels")
    meteor_wall = (timers.end("meteor") - t0) if "meteor" in METRICS else 0.0
    waited = max(0.0, timers.end("meteor") - max(timers.end("kernels"), timers.end("ptb"))) \
        if "meteor" in METRICS else 0.0
    jvm = jvm_table_load_seconds() if "meteor" in METRICS else 0.0
    kernels_only = kernels - ptb_s  # the first kernel call runs the PTB pass inside its statistics()
    rest = total - ptb_s - kernels_only - waited
    print(f"{name:10s} breakdown of {total:6.2f} s: PTB JVM pass {ptb_s:5.2f} s · BLEU+ROUGE-L+CIDEr-D "
          f"{kernels_only:5.2f} s · waiting for METEOR {waited:5.2f} s (METEOR's thread ended at "
          f"{meteor_wall:5.2f} s; its JVM's table load alone: {jvm:4.2f} s) · rest {rest:5.2f} s", flush=True)


def run(name: str, refs, systems, repeats: int) -> None:
    """Time both paths (warm-up first, then ABBA order so disk caches favour neither) and compare every number."""
    few = list(refs)[:20]
    _time_capeval({i: refs[i] for i in few}, {s: {i: c[i] for i in few} for s, c in systems.items()})
    _time_direct({i: refs[i] for i in few}, {s: {i: c[i] for i in few} for s, c in systems.items()})
    t_capeval, t_direct = [], []
    for r in range(repeats):
        order = (_time_capeval, _time_direct) if r % 2 == 0 else (_time_direct, _time_capeval)
        for fn in order:
            seconds, out = fn(refs, systems)
            if fn is _time_capeval:
                t_capeval.append(seconds)
                results = out
            else:
                t_direct.append(seconds)
                direct = out

    worst = 0.0
    samples = results.samples
    summary = results.summary_dict()["captioners"]
    ids = list(refs)
    for sys_name, by_key in direct.items():
        for key in _keys():
            corpus, per = by_key[key]
            worst = max(worst, abs(summary[sys_name][key]["mean"] - corpus))
            mask = (samples.captioner == sys_name) & (samples.metric == key)
            ours = samples[mask].set_index("sample_id")["value"]
            worst = max(worst, float(np.max(np.abs(ours.loc[ids].to_numpy() - np.asarray(per, dtype=float)))))
    n = sum(len(c) for c in systems.values())
    tc, td = float(np.mean(t_capeval)), float(np.mean(t_direct))
    print(f"{name:10s} {n:6d} candidates  capeval {tc:7.2f} s  direct {td:7.2f} s  "
          f"ratio {tc / td:5.2f}x  max|diff| {worst:.2e}  (mean of {repeats} runs each)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--shared", type=Path, default=default_shared)
    parser.add_argument("--datasets", default="thumb,flickr8k")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--metrics", default=",".join(ALL), help="a subset of bleu,meteor,rouge_l,cider")
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    METRICS[:] = [m for m in ALL if m in args.metrics.split(",")]
    loaders = {"thumb": thumb, "flickr8k": flickr8k}
    print(f"metrics: {', '.join(METRICS)}", flush=True)
    for name in args.datasets.split(","):
        refs, systems = loaders[name](args.shared)
        run(name, refs, systems, args.repeats)
        if args.breakdown:
            breakdown(name, refs, systems)


if __name__ == "__main__":
    main()
