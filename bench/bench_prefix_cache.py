"""Prompt tokens a prefix-caching server evaluates for CLAIR: clair-v1 (candidate first) vs clair-v2 (candidate last).

Starts the local judge (``capeval judge serve``: llama.cpp via xllamacpp, SmolLM2-135M by default) on
127.0.0.1 and sends CLAIR's requests for 5 captioners x 100 THumB images (../shared/data/thumb) three ways:

* ``v1``: clair-v1 (today's order: candidate, then references), captioner after captioner, as ``capeval score``
  runs a metric;
* ``v2``: clair-v2 (instructions and references first, candidate last), captioner after captioner;
* ``v2-grouped``: clair-v2 with one image's five captioners in one request group (the client sends a group's
  requests back to back on one connection, so the server finds the shared prefix in the slot that just
  evaluated it).

Every request asks for one completion token, so the bench measures prompt evaluation only. For each way it
prints the prompt tokens sent, the tokens the server reports as served from its cache
(``usage.prompt_tokens_details.cached_tokens``), the tokens actually evaluated (the difference) and the wall
time. A fresh server per way, so no way profits from another's cache.

    python bench/bench_prefix_cache.py [--images 100] [--captioners 5] [--threads 1] [--parallel 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from thumb_data import THUMB, load_thumb  # noqa: E402

from capeval.judges import Judge, JudgeConfig, load_template  # noqa: E402
from capeval.judges.serve import LocalJudgeServer  # noqa: E402
from capeval.metrics.clair import clair_requests, reference_groups  # noqa: E402

WAYS = ("v1", "v2", "v2-grouped")


def thumb_folder() -> Path:
    """../shared/data/thumb of this checkout (or of the main checkout, for a git worktree)."""
    here = Path(__file__).resolve().parents[1]
    for cand in (here.parent / "shared" / "data" / "thumb", THUMB, Path("/work/shared/data/thumb")):
        if (cand / "mscoco_references.jsonl").is_file():
            return cand
    raise SystemExit("THumB not found: expected ../shared/data/thumb beside the checkout")


def build(way: str, refs: dict, systems: dict) -> list:
    """The requests of one way, in the order they are sent."""
    template = load_template("clair-v1" if way == "v1" else "clair-v2")
    out = []
    for _name, caps in systems.items():
        ids = [i for i in refs if i in caps]
        reqs = clair_requests(template, [caps[i] for i in ids], [refs[i] for i in ids], seed=0,
                              groups=reference_groups([refs[i] for i in ids]) if way == "v2-grouped" else None)
        out.extend(reqs)
    if way == "v2-grouped":  # image-major: the client keeps a group together; order groups by first use
        order = {g: k for k, g in enumerate(dict.fromkeys(r.group for r in out))}
        out.sort(key=lambda r: order[r.group])
    return [replace(r, max_tokens=1, temperature=0.0, response_format=None) for r in out]


def run_way(way: str, refs: dict, systems: dict, args: argparse.Namespace) -> dict:
    requests = build(way, refs, systems)
    with LocalJudgeServer(model=args.model, parallel=args.parallel, threads=args.threads, ctx=2048) as server, \
            tempfile.TemporaryDirectory() as tmp:
        config = JudgeConfig(model=server.alias, base_url=server.base_url, concurrency=args.parallel,
                             cache_path=Path(tmp) / "c.sqlite", cache="off", timeout=600, retries=2)
        start = time.perf_counter()
        with Judge(config) as judge:
            replies = judge.run(requests)
            usage = judge.take_usage()
        seconds = time.perf_counter() - start
    failed = sum(not r.ok for r in replies)
    return {"way": way, "requests": len(requests), "failed": failed, "prompt_tokens": usage.prompt_tokens,
            "cached_tokens": usage.cached_prompt_tokens,
            "evaluated_tokens": usage.prompt_tokens - usage.cached_prompt_tokens, "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--captioners", type=int, default=5)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    refs, systems = load_thumb(args.images, thumb_folder())
    systems = dict(list(systems.items())[: args.captioners])
    print(f"{len(systems)} captioners ({', '.join(systems)}) x {len(refs)} THumB images, model {args.model}",
          flush=True)
    rows = []
    for way in args.ways.split(","):
        row = run_way(way, refs, systems, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["way"] == "v1"), rows[0])["evaluated_tokens"] or 1
    print(f"{'way':<12}{'sent':>10}{'cached':>10}{'evaluated':>11}{'vs v1':>10}{'seconds':>9}")
    for r in rows:
        print(f"{r['way']:<12}{r['prompt_tokens']:>10}{r['cached_tokens']:>10}{r['evaluated_tokens']:>11}"
              f"{r['evaluated_tokens'] / base:>10.2f}{r['seconds']:>9}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
