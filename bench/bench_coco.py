"""Benchmark: `capeval score` (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) vs pycocoevalcap's scorers called directly.

Both run in this process on the same inputs, each starting its own JVMs, and the largest |difference| of any
per-sample or corpus score is printed with the time ratio (capeval / direct; target <= 1.15).

    python bench/bench_coco.py [--shared ../shared/data] [--datasets thumb,flickr8k]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pycocoevalcap.meteor.meteor import Meteor
from thumb_data import load_thumb

import capeval
from capeval.reference import score_direct

KEYS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]


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


def _time_capeval(refs, systems):
    t0 = time.perf_counter()
    results = capeval.evaluate(refs, systems, metrics=["bleu", "meteor", "rouge_l", "cider"])
    return time.perf_counter() - t0, results


def _time_direct(refs, systems):
    t0 = time.perf_counter()
    meteor = Meteor()
    direct = {sys_name: score_direct(refs, cands, meteor=meteor) for sys_name, cands in systems.items()}
    del meteor
    return time.perf_counter() - t0, direct


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
        for key in KEYS:
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
    args = parser.parse_args()
    loaders = {"thumb": thumb, "flickr8k": flickr8k}
    for name in args.datasets.split(","):
        refs, systems = loaders[name](args.shared)
        run(name, refs, systems, args.repeats)


if __name__ == "__main__":
    main()
