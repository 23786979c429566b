"""Synthetic COCO-style corpora of any size for the scaling benchmarks, spliced from real captions.

Each caption is the first part of one real caption (THumB 1.0 and Flickr8k, ../shared/data) joined to the
last part of another, so the n-gram statistics are those of real captions while almost every string is new
(nothing gains from duplicate strings). Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def caption_pool(shared: Path = SHARED) -> list[str]:
    """Every distinct real caption and reference of THumB 1.0 and Flickr8k-Expert/CF, in file order."""
    pool: dict[str, None] = {}
    for line in (shared / "thumb" / "mscoco_references.jsonl").read_text().splitlines():
        pool.update(dict.fromkeys(json.loads(line)["refs"]))
    for line in (shared / "thumb" / "mscoco_THumB-1.0.jsonl").read_text().splitlines():
        pool[json.loads(line)["hyp"]] = None
    for name in ("flickr8k_expert", "flickr8k_cf"):
        for item in json.loads((shared / "human-judgments" / f"{name}.json").read_text()).values():
            pool.update(dict.fromkeys(item["ground_truth"]))
            pool.update(dict.fromkeys(j["caption"] for j in item["human_judgement"]))
    return [p for p in pool if p.strip()]


def synthetic_corpus(n: int, n_refs: int = 4, seed: int = 0, pool: list[str] | None = None
                     ) -> tuple[list[str], list[list[str]]]:
    """``n`` candidates and ``n_refs`` references each, spliced from ``pool`` (default: :func:`caption_pool`)."""
    words = [p.split() for p in (pool if pool is not None else caption_pool())]
    rng = random.Random(seed)

    def splice() -> str:
        a, b = rng.choice(words), rng.choice(words)
        cut_a = rng.randint(1, max(1, len(a) - 1))
        cut_b = rng.randint(0, max(0, len(b) - 1))
        return " ".join(a[:cut_a] + b[cut_b:])

    cands = [splice() for _ in range(n)]
    refs = [[splice() for _ in range(n_refs)] for _ in range(n)]
    return cands, refs
