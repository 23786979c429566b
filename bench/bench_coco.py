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

import capeval
from capeval.reference import score_direct

KEYS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]


def thumb(shared: Path):
    """THumB 1.0: 500 images x 5 captioners, 4 references each."""
    refs = {}
    for line in (shared / "thumb" / "mscoco_references.jsonl").read_text().splitlines():
        row = json.loads(line)
        refs[row["seg_id"]] = row["refs"]
    systems: dict[str, dict[str, str]] = {}
    for line in (shared / "thumb" / "mscoco_THumB-1.0.jsonl").read_text().splitlines():
        row = json.loads(line)
        systems.setdefault(row["SYS"], {})[row["seg_id"]] = row["hyp"]
    return refs, systems


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


def run(name: str, refs, systems) -> None:
    """Time both paths and compare every number."""
    t0 = time.perf_counter()
    results = capeval.evaluate(refs, systems, metrics=["bleu", "meteor", "rouge_l", "cider"])
    t_capeval = time.perf_counter() - t0

    t0 = time.perf_counter()
    meteor = Meteor()
    direct = {sys_name: score_direct(refs, cands, meteor=meteor) for sys_name, cands in systems.items()}
    del meteor
    t_direct = time.perf_counter() - t0

    worst = 0.0
    samples = results.samples
    summary = results.summary_dict()["captioners"]
    ids = list(refs)
    for sys_name, by_key in direct.items():
        for key in KEYS:
            corpus, per = by_key[key]
            worst = max(worst, abs(summary[sys_name][key]["mean"] - corpus))
            ours = samples[(samples.captioner == sys_name) & (samples.metric == key)].set_index("sample_id")["value"]
            worst = max(worst, float(np.max(np.abs(ours.loc[ids].to_numpy() - np.asarray(per, dtype=float)))))
    n = sum(len(c) for c in systems.values())
    print(f"{name:10s} {n:6d} candidates  capeval {t_capeval:7.2f} s  direct {t_direct:7.2f} s  "
          f"ratio {t_capeval / t_direct:5.2f}x  max|diff| {worst:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--datasets", default="thumb,flickr8k")
    args = parser.parse_args()
    loaders = {"thumb": thumb, "flickr8k": flickr8k}
    for name in args.datasets.split(","):
        refs, systems = loaders[name](args.shared)
        run(name, refs, systems)


if __name__ == "__main__":
    main()
