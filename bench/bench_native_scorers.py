"""Benchmark: capeval's native BLEU + ROUGE-L + CIDEr-D kernels vs pycocoevalcap's scorer classes (issue 17).

Scorers only, on the same tokenised strings in this process: a synthetic corpus of ``--n`` captions with 4
references (see ``coco_synthetic.py``; tokenised by lower-casing and splitting, as the scorers only see tokens).
Prints each kernel's time, the ratio pycocoevalcap / native (target >= 5 at 100,000 captions) and the largest
|difference| of any per-sample or corpus score.

    python bench/bench_native_scorers.py [--n 100000] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from pathlib import Path

import numpy as np
from coco_synthetic import SHARED, caption_pool, synthetic_corpus

from capeval.metrics.native import bleu_statistics, cider_d, corpus_bleu, encode, rouge_l, sentence_bleu


def _simple_tokens(text: str) -> str:
    return " ".join(w.strip(".,!?;:\"'") for w in text.lower().split() if w.strip(".,!?;:\"'"))


def native(cands, refs):
    times, out = {}, {}
    t0 = time.perf_counter()
    table = encode(cands, refs)
    times["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = bleu_statistics(table)
    out["bleu"] = (corpus_bleu(stats), sentence_bleu(stats))
    times["bleu"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = rouge_l(table)
    out["rouge_l"] = ([float(np.mean(r))], r[:, None])
    times["rouge_l"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = cider_d(table)
    out["cider"] = ([float(np.mean(c))], c[:, None])
    times["cider"] = time.perf_counter() - t0
    return times, out


def reference(cands, refs):
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    times, out = {}, {}
    t0 = time.perf_counter()
    scorer = BleuScorer(n=4)
    for c, r in zip(cands, refs, strict=True):
        scorer += (c, r)
    with contextlib.redirect_stdout(io.StringIO()):
        corpus, per = scorer.compute_score(option="closest", verbose=0)
    out["bleu"] = (corpus, np.asarray(per).T)
    times["bleu"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rouge = Rouge()
    r = np.array([rouge.calc_score([c], rs) for c, rs in zip(cands, refs, strict=True)])
    out["rouge_l"] = ([float(np.mean(r))], r[:, None])
    times["rouge_l"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    keys = range(len(cands))
    corpus, per = Cider(n=4, sigma=6.0).compute_score({i: refs[i] for i in keys}, {i: [cands[i]] for i in keys})
    out["cider"] = ([float(corpus)], np.asarray(per)[:, None])
    times["cider"] = time.perf_counter() - t0
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--worst", action="store_true", help="print the metric and sample of the largest difference")
    args = parser.parse_args()
    pool = [_simple_tokens(p) for p in caption_pool(args.shared)]
    cands, refs = synthetic_corpus(args.n, pool=[p for p in pool if p])
    t_native, ours = native(cands, refs)
    t_ref, theirs = reference(cands, refs)
    worst = 0.0
    for key in theirs:
        diff = np.abs(np.asarray(ours[key][1]) - np.asarray(theirs[key][1]))
        corpus_diff = float(np.max(np.abs(np.asarray(ours[key][0]) - np.asarray(theirs[key][0]))))
        worst = max(worst, float(np.max(diff)), corpus_diff)
        if args.worst:
            i = int(np.argmax(diff.max(axis=1)))
            print(f"{key}: max per-sample |diff| {diff.max():.2e} at sample {i} ({cands[i]!r}), "
                  f"{int((diff > 0).sum())} differing values; corpus |diff| {corpus_diff:.2e}")
    total_native = sum(t_native.values())
    total_ref = sum(t_ref.values())
    print(f"{args.n} captions x 4 references")
    print("native        " + "  ".join(f"{k} {v:6.2f} s" for k, v in t_native.items()))
    print("pycocoevalcap " + "  ".join(f"{k} {v:6.2f} s" for k, v in t_ref.items()))
    print(f"total native {total_native:.2f} s  pycocoevalcap {total_ref:.2f} s  "
          f"speed-up {total_ref / total_native:.1f}x  max|diff| {worst:.2e}", flush=True)


if __name__ == "__main__":
    main()
