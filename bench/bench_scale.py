"""Scale-out benchmarks (issue 16): printed figures, not timed tests.

    python bench/bench_scale.py score [--captions 1000000]     # (a) bleu,rouge_l,cider: local vs Ray 2 workers
    python bench/bench_scale.py judges [--requests 1600]       # (b) judge throughput, 1 / 2 / 4 fake endpoints
    python bench/bench_scale.py annotate [--rows 1000000]      # (c) annotate's peak RSS on a big parquet

(a) synthesises N candidate captions from THumB text with new ids (each a THumB caption of a random image,
4 of that image's references), then runs each engine in a fresh process: wall time, the driver's peak RSS and,
for Ray, each worker's (from the engine's log). The texts repeat THumB's, so PTB tokenisation (once per unique
caption) is small next to the per-sample metric work; the numbers measure the per-sample path.
(b) starts 4 bounded fake endpoints (capeval.judges.faultserver: fixed latency, concurrency cap, loopback), and
judges the same requests through a pool of 1, 2 and 4 of them: requests/s and the ratio to one endpoint.
(c) writes an N-row parquet of THumB captions with reference lists and runs `capeval annotate` in a child
process with --keep; prints the child's peak RSS and rows/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from thumb_data import load_thumb  # noqa: E402

HERE = Path(__file__).resolve()


def synth(n: int, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, str]]:
    """n (references, candidate) samples drawn from THumB text, ids s0000000..."""
    refs, systems = load_thumb()
    rng = random.Random(seed)
    pairs = [(i, cap) for caps in systems.values() for i, cap in caps.items()]
    out_refs, out_cands = {}, {}
    for k in range(n):
        image, cap = pairs[rng.randrange(len(pairs))]
        sid = f"s{k:07d}"
        out_refs[sid] = rng.sample(refs[image], 4) if len(refs[image]) >= 4 else list(refs[image])
        out_cands[sid] = cap
    return out_refs, out_cands


def one_score(engine: str, n: int, workers: int) -> None:
    """Child process: one engine on n synthetic captions; prints a JSON line."""
    import capeval

    peaks: list[int] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = re.search(r"peak RSS \[([\d, ]+)\] MB", record.getMessage())
            if m:
                peaks.extend(int(x) for x in m.group(1).split(","))

    log = logging.getLogger("capeval")
    log.addHandler(Grab())
    log.setLevel(logging.INFO)
    refs, cands = synth(n)
    start = time.perf_counter()
    res = capeval.evaluate(refs, {"synth": cands}, ["bleu", "rouge_l", "cider"], engine=engine,
                           workers=workers if engine == "ray" else None)
    wall = time.perf_counter() - start
    corpus = {r.metric: r.value for r in res.corpus.itertuples()}
    print(json.dumps({"engine": engine, "wall": wall, "driver_rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, "worker_rss_mb": peaks, "corpus": corpus}))


def bench_score(args: argparse.Namespace) -> None:
    results = {}
    for engine in args.engines.split(","):
        proc = subprocess.run([sys.executable, str(HERE), "_one", engine, str(args.captions), str(args.workers)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{engine}: failed\n{proc.stderr[-2000:]}")
            continue
        results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[engine]
        workers = f", workers' peak RSS {r['worker_rss_mb']} MB" if r["worker_rss_mb"] else ""
        print(f"{engine:6s} {args.captions:>9,} captions  wall {r['wall']:8.1f} s  driver peak RSS "
              f"{r['driver_rss_mb']:7.0f} MB{workers}", flush=True)
    if {"local", "ray"} <= results.keys():
        a, b = results["local"], results["ray"]
        diff = max(abs(a["corpus"][k] - b["corpus"][k]) for k in a["corpus"])
        print(f"ray/local wall time {b['wall'] / a['wall']:.2f}x; largest corpus difference {diff:.1e}")


def bench_judges(args: argparse.Namespace) -> None:
    from capeval.judges import Judge, JudgeConfig, JudgeRequest
    from capeval.judges.endpoints import Endpoint, EndpointPool

    procs, urls = [], []
    tmp = Path(tempfile.mkdtemp())
    try:
        for k in range(4):
            port_file = tmp / f"port{k}"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "capeval.judges.faultserver", "--instant", "--port", "0", "--port-file",
                 str(port_file), "--delay", str(args.latency), "--concurrency", str(args.cap)],
                stdout=subprocess.DEVNULL))
            while not port_file.exists():
                time.sleep(0.05)
            urls.append(f"http://127.0.0.1:{port_file.read_text()}/v1")
        print(f"fake endpoints: latency {args.latency * 1000:.0f} ms, {args.cap} requests at once each "
              f"(capacity {args.cap / args.latency:.0f} req/s each); {args.requests} requests per run")
        base = None
        for n in (1, 2, 4):
            pool = EndpointPool("bench", tuple(Endpoint(f"e{k}", urls[k], "bench", concurrency=args.cap)
                                               for k in range(n)))
            config = JudgeConfig(model="bench", endpoints=pool, cache_path=tmp / f"c{n}.sqlite", timeout=30)
            requests = [JudgeRequest(messages=[{"role": "user", "content": f"judge {n} {i}"}], seed=0)
                        for i in range(args.requests)]
            with Judge(config) as judge:
                judge.run(requests[:50])
                start = time.perf_counter()
                replies = judge.run(requests[50:])
                rate = (len(requests) - 50) / (time.perf_counter() - start)
            assert all(r.ok for r in replies)
            base = base or rate
            print(f"  {n} endpoint(s): {rate:7.0f} req/s   {rate / base:.2f}x one endpoint "
                  f"(ideal {n}.00x)", flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def bench_annotate(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    refs, systems = load_thumb()
    rows = [(i, name, cap, refs[i]) for name, caps in systems.items() for i, cap in caps.items()]
    tmp = Path(tempfile.mkdtemp())
    src = tmp / "rows.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, args.rows, 100_000):  # written in pieces: the bench itself stays small
        idx = np.arange(start, min(args.rows, start + 100_000)) % len(rows)
        frame = pd.DataFrame({"id": np.arange(start, start + len(idx)), "image": [rows[j][0] for j in idx],
                              "system": [rows[j][1] for j in idx], "caption": [rows[j][2] for j in idx],
                              "refs": [rows[j][3] for j in idx]})
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(src, table.schema)
        writer.write_table(table)
    writer.close()
    cmd = [sys.executable, "-m", "capeval", "annotate", str(src), "--metrics", args.metrics, "--keep",
           args.keep, "--out", str(tmp / "out.parquet"), "--chunk-rows", str(args.chunk_rows)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(proc.stdout.strip() or proc.stderr[-2000:])
    print(f"annotate {args.rows:,} rows ({args.metrics}, chunks of {args.chunk_rows:,}): {wall:.0f} s, "
          f"{args.rows / wall:,.0f} rows/s, peak RSS of the annotate process {peak:,.0f} MB (bound: 4,096 MB)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        one_score(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("score")
    s.add_argument("--captions", type=int, default=1_000_000)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--engines", default="local,ray")
    j = sub.add_parser("judges")
    j.add_argument("--requests", type=int, default=1600)
    j.add_argument("--latency", type=float, default=0.05)
    j.add_argument("--cap", type=int, default=8)
    a = sub.add_parser("annotate")
    a.add_argument("--rows", type=int, default=1_000_000)
    a.add_argument("--metrics", default="rouge_l")
    a.add_argument("--keep", default="rouge_l>=0.5")
    a.add_argument("--chunk-rows", type=int, default=50_000)
    args = ap.parse_args()
    {"score": bench_score, "judges": bench_judges, "annotate": bench_annotate}[args.what](args)


if __name__ == "__main__":
    main()
