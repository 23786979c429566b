"""Prompt tokens a prefix-caching server evaluates in a `capeval score` CLAIR run: by captioner vs by image.

Writes the first N THumB images (../shared/data/thumb) of 5 captioners as JSON maps, starts the local judge
(``capeval judge serve``: llama.cpp via xllamacpp, SmolLM2-135M, one thread, 4 slots) and runs, on a fresh
server each, the same command two ways:

    capeval score --refs refs.json --cand NAME=NAME.json ... --metrics clair --no-cache \\
        --option judge_scoring=likelihood --option judge_schedule=captioner|image

``captioner``: one captioner's requests after another (capeval before issue 15's scheduling); ``image`` (the
default): one image's five captioners back to back, to one endpoint. Likelihood scoring asks for one token,
so the run is dominated by prompt evaluation. For each way it prints the prompt tokens sent, those the
server reports as served from its cache (``usage.prompt_tokens_details.cached_tokens``, summed by capeval into
the run's usage), the difference (evaluated), the wall time, and whether the two runs' per-captioner scores
are equal (llama.cpp's arithmetic depends on how a prompt was split into batches, so probabilities may move
in the last digits).

    python bench/bench_score_schedule.py [--images 10] [--captioners 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prefix_cache import thumb_folder  # noqa: E402
from thumb_data import load_thumb  # noqa: E402

from capeval.judges.serve import LocalJudgeServer  # noqa: E402

WAYS = ("captioner", "image")


def run_way(way: str, folder: Path, names: list[str], args: argparse.Namespace) -> dict:
    out = folder / f"run-{way}"
    with LocalJudgeServer(model=args.model, parallel=args.parallel, threads=args.threads, ctx=2048) as server:
        cmd = [sys.executable, "-m", "capeval", "score", "--refs", str(folder / "refs.json"),
               *[a for n in names for a in ("--cand", f"{n}={folder / (n + '.json')}")],
               "--metrics", "clair", "--out", str(out), "--no-cache", "-q",
               "--judge-base-url", server.base_url, "--judge-model", server.alias,
               "--judge-concurrency", str(args.parallel), "--option", "judge_scoring=likelihood",
               "--option", "judge_timeout=1800", "--option", f"judge_schedule={way}"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ.copy())
        seconds = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    usage = summary["usage"]["clair"]
    sent, cached = int(usage["prompt_tokens"]), int(usage.get("cached_prompt_tokens", 0))
    scores = {n: summary["captioners"][n]["clair"]["mean"] for n in names}
    return {"way": way, "requests": int(usage["judge_calls"]), "failed": int(usage["judge_errors"]),
            "prompt_tokens": sent, "cached_tokens": cached, "evaluated_tokens": sent - cached,
            "seconds": round(seconds, 1), "scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--captioners", type=int, default=5)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    refs, systems = load_thumb(args.images, thumb_folder())
    systems = dict(list(systems.items())[: args.captioners])
    names = [n.replace(" ", "_") for n in systems]
    print(f"{len(systems)} captioners ({', '.join(names)}) x {len(refs)} THumB images, model {args.model}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "refs.json").write_text(json.dumps(refs))
        for name, caps in zip(names, systems.values(), strict=True):
            (folder / f"{name}.json").write_text(json.dumps(caps))
        for way in args.ways.split(","):
            row = run_way(way, folder, names, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["evaluated_tokens"] or 1
    print(f"{'schedule':<12}{'requests':>9}{'sent':>9}{'cached':>9}{'evaluated':>11}{'ratio':>7}{'seconds':>9}")
    for r in rows:
        print(f"{r['way']:<12}{r['requests']:>9}{r['prompt_tokens']:>9}{r['cached_tokens']:>9}"
              f"{r['evaluated_tokens']:>11}{r['evaluated_tokens'] / base:>7.2f}{r['seconds']:>9}")
    if len(rows) > 1:
        diff = max(abs(rows[0]["scores"][n] - r["scores"][n]) for r in rows[1:] for n in names)
        print(f"largest difference of a captioner's CLAIR between the ways: {diff:.2e}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
