"""Benchmark: wall time and peak RSS of `capeval score -m bleu,rouge_l,cider` end to end, against caption count.

For each ``--sizes`` value, a synthetic corpus (``coco_synthetic.py``: spliced real captions, 4 references
each) is written as JSON files and scored by ``python -m capeval score`` in a fresh process; the process's
peak RSS (``VmHWM``, the Python process; the PTB JVM is a separate process) is read at exit. Issue 17's
target at 100,000 captions: <= 0.6 GB and <= 12 s. ``--option coco_impl=pycocoevalcap`` measures the reference scorers.

    python bench/bench_coco_memory.py [--sizes 25000,50000,100000] [--option coco_impl=pycocoevalcap]
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

from coco_synthetic import SHARED, caption_pool, synthetic_corpus

# Runs the CLI in this interpreter and reports its peak RSS on stderr at exit.
WRAPPER = r"""
import atexit, sys
def report():
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    sys.stderr.write(f"\nPEAK_RSS_KB {hwm}\n")
atexit.register(report)
sys.argv = ["capeval"] + sys.argv[1:]
from capeval.cli import main
main()
"""


def run_one(n: int, pool: list[str], folder: Path, options: list[str]) -> tuple[float, float]:
    cands, refs = synthetic_corpus(n, pool=pool)
    ids = [f"s{i}" for i in range(n)]
    (folder / "refs.json").write_text(json.dumps(dict(zip(ids, refs, strict=True))))
    (folder / "cands.json").write_text(json.dumps(dict(zip(ids, cands, strict=True))))
    del cands, refs
    cmd = [sys.executable, "-c", WRAPPER, "score", "--refs", str(folder / "refs.json"),
           "--cand", f"synthetic={folder / 'cands.json'}", "--out", str(folder / f"run{n}"),
           "-m", "bleu,rouge_l,cider", "--quiet"]
    for opt in options:
        cmd += ["--option", opt]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"capeval score failed for n={n}: {proc.stderr[-2000:]}")
    line = [x for x in proc.stderr.splitlines() if x.startswith("PEAK_RSS_KB")][-1]
    return seconds, int(line.split()[1]) / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000,50000,100000")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--option", action="append", default=[])
    args = parser.parse_args()
    pool = caption_pool(args.shared)
    rows = []
    with tempfile.TemporaryDirectory(prefix="capeval-bench-mem-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            seconds, own = run_one(n, pool, Path(tmp), args.option)
            rows.append((n, own))
            print(f"{n:8d} captions  {seconds:6.1f} s  peak RSS {own:5.2f} GB  ({own * 1024 ** 2 / n:5.1f} KB/caption)",
                  flush=True)
    if len(rows) > 1:
        (n0, r0), (n1, r1) = rows[0], rows[-1]
        print(f"RSS growth {(r1 - r0) * 1024 ** 2 / (n1 - n0):.1f} KB per extra caption "
              f"(between {n0} and {n1}), intercept {r0 - (r1 - r0) / (n1 - n0) * n0:.2f} GB")


if __name__ == "__main__":
    main()
