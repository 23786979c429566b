"""Benchmark: `capeval board` on a synthetic board of 50 submissions x 5,000 images (7 per-sample metrics).

Times ``board add`` of each submission (one single-captioner run directory each, through the library call the
CLI makes), then ``board build`` (statistics of the track: 1000 bootstrap resamples, 5000-permutation paired
tests of all 1,225 pairs per metric with Holm's correction; then the site), then a second build that reuses the
cached statistics. The numbers are random (NOT an evaluation): for sizing and timing only.

    python bench/bench_board.py [--submissions 50] [--images 5000] [--out /tmp/capeval-bench-board]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

from capeval.board import add_submission, init_board
from capeval.board.site import build_site
from capeval.report.synthetic import synthetic_results


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/capeval-bench-board"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    started = time.perf_counter()
    results = synthetic_results(args.images, args.submissions)
    results = replace(results, metric_info={m: {**i, "aggregation": "mean"} for m, i in results.metric_info.items()})
    refs = args.out / "references.json"
    refs.write_text(json.dumps(results.dataset.references))
    runs = []
    for cap in results.dataset.candidates:  # one run directory per submission, as users would have them
        one = replace(results, dataset=replace(results.dataset, candidates={cap: results.dataset.candidates[cap]}),
                      samples=results.samples[results.samples["captioner"] == cap],
                      corpus=results.corpus[results.corpus["captioner"] == cap],
                      inputs={"references": results.inputs["references"], "candidates": {cap: {"path": "<synthetic>"}}})
        runs.append(one.write(args.out / "runs" / cap, command=["synthetic"]))
    print(f"wrote {len(runs)} synthetic runs in {time.perf_counter() - started:.1f} s")
    board = args.out / "board"
    init_board(board, refs)
    add_times = []
    for run in runs:
        t0 = time.perf_counter()
        add_submission(board, run)
        add_times.append(time.perf_counter() - t0)
    print(f"board add: median {statistics.median(add_times):.3f} s, max {max(add_times):.3f} s, "
          f"total {sum(add_times):.1f} s for {len(runs)} submissions x {args.images} images "
          f"(database {(board / 'board.sqlite').stat().st_size / 1e6:.0f} MB)")
    t0 = time.perf_counter()
    site = build_site(board, args.out / "site")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_site(board, args.out / "site")
    second = time.perf_counter() - t0
    print(f"board build: {first:.1f} s with statistics, {second:.1f} s with cached statistics; "
          f"site {_dir_size(site) / 1e6:.0f} MB, {len(list((site / 's').iterdir()))} submission pages")


if __name__ == "__main__":
    main()
