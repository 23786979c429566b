"""Benchmark CAPTURE (Dong et al., 2024) in capeval on THumB 1.0: captions per second, offline.

THumB (../shared/data/thumb): 500 COCO images, 5 captioners, 4 references each = 2,500 candidates and 10,000
candidate-reference pairs. Two measurements, both with the offline spaCy parser:

1. end to end: ``capeval.evaluate(..., metrics=["capture"])`` for the five captioners, model loading included;
2. the stages of the same work with models already loaded: parsing every unique sentence once, embedding the
   phrases left for soft matching once, and matching/scoring all pairs.

Prints candidates per second (wall clock, with CPU time beside it: steadier on a shared machine).

    python bench/bench_capture.py [--limit N_IMAGES] [--encoder mpnet|minilm]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from thumb_data import load_thumb

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def main() -> None:
    """Run the benchmark and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N images only (default: all 500)")
    parser.add_argument("--encoder", default="mpnet", help="capture_encoder (default: mpnet, as the reference)")
    args, _ = parser.parse_known_args()  # nox passes the same arguments to every benchmark
    logging.basicConfig(level=logging.ERROR)

    import capeval
    from capeval.capture.encoders import load_encoder
    from capeval.capture.parsing import SpacyParser
    from capeval.capture.pipeline import GraphCache
    from capeval.capture.scoring import score_samples

    refs, systems = load_thumb(args.limit)
    n_cands = sum(len(c) for c in systems.values())
    n_pairs = sum(len(refs[i]) for c in systems.values() for i in c)
    print(f"THumB: {len(refs)} images, {len(systems)} captioners, {n_cands} candidates, {n_pairs} pairs; "
          f"encoder {args.encoder}, parser spacy")

    options = {"capture_parser": "spacy", "capture_encoder": args.encoder}
    with Clock() as total:
        results = capeval.evaluate(refs, systems, metrics=["capture"], options=options)
    mean = results.summary[results.summary.metric == "capture"].set_index("captioner")["mean"]
    print(f"end to end (model loading included): {total.wall:.1f} s wall, {total.cpu:.1f} s CPU -> "
          f"{n_cands / total.wall:.1f} candidates/s ({n_cands / total.cpu:.1f} per CPU second)")
    print("  CAPTURE per captioner: " + ", ".join(f"{k} {v:.4f}" for k, v in mean.items()))

    with Clock() as load:
        cache = GraphCache(SpacyParser())
        _, encoder = load_encoder(args.encoder)
    captions = [r for rs in refs.values() for r in rs] + [c for cs in systems.values() for c in cs.values()]
    with Clock() as parse:
        cache.graphs(captions)
    embed_wall = 0.0

    def timed_encoder(phrases):
        nonlocal embed_wall
        start = time.perf_counter()
        try:
            return encoder(phrases)
        finally:
            embed_wall += time.perf_counter() - start

    with Clock() as score:
        for cands in systems.values():
            ids = list(cands)
            cand_graphs = cache.graphs([cands[i] for i in ids])
            ref_graphs = [cache.graphs(refs[i]) for i in ids]
            score_samples(cand_graphs, ref_graphs, timed_encoder)
    work = parse.wall + score.wall
    print(f"stages (models loaded in {load.wall:.1f} s): parse {cache.parsed_sentences} unique sentences "
          f"{parse.wall:.1f} s; embed {encoder.encoded} unique phrases {embed_wall:.1f} s; "
          f"match/score {n_pairs} pairs {score.wall - embed_wall:.1f} s")
    print(f"warm throughput: {n_cands / work:.1f} candidates/s wall "
          f"({n_cands / (parse.cpu + score.cpu):.1f} per CPU second), {n_pairs / work:.1f} pairs/s")


if __name__ == "__main__":
    main()
