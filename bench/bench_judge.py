"""Judge path throughput: capeval's client (cache + AsyncOpenAI + retries) vs a raw aiohttp client, and cache hits/s.

Starts the instant reply server (capeval.judges.faultserver --instant) in a separate process on 127.0.0.1, then
in this process alternates rounds of (a) a raw aiohttp client posting the same chat requests at concurrency 64
(JSON-encoding each body and parsing each reply) and (b) capeval's Judge.run at concurrency 64 with a fresh
cache (every call a miss, committed to SQLite), and reports requests/s and the ratio (target >= 0.9). Then it
fills a cache with N entries and times Judge.run over N requests that all hit (keys hashed, looked up,
replies built): judgments/s (target >= 20,000).

    python bench/bench_judge.py [--requests 2000] [--rounds 7] [--cached 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from capeval.judges import Judge, JudgeConfig, JudgeRequest

CONCURRENCY = 64


def make_requests(n: int, tag: str) -> list[JudgeRequest]:
    """Chat requests shaped like CLAIR's (a prompt of ~500 characters, a JSON schema, a seed)."""
    schema = {"type": "json_schema", "json_schema": {"name": "clair", "strict": True, "schema": {
        "type": "object", "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
        "required": ["score", "reason"], "additionalProperties": False}}}
    body = ("Two sets of image captions are given below. Judge whether they were written about the same image.\n"
            "Candidate captions:\n- a man riding a wave on top of a surfboard {i}\nReference captions:\n"
            "- a surfer rides a large wave\n- a person surfing in the ocean\n- a man on a surfboard\n"
            "On a scale from 0 to 100, how likely is it ... Reply in JSON with score and reason. [{tag}]")
    return [JudgeRequest(messages=[{"role": "user", "content": body.format(i=i, tag=tag)}], seed=0,
                         response_format=schema) for i in range(n)]


def start_server() -> tuple[subprocess.Popen, str]:
    """The instant server in its own process; returns (process, base URL)."""
    port_file = Path(tempfile.mkdtemp()) / "port"
    proc = subprocess.Popen([sys.executable, "-m", "capeval.judges.faultserver", "--instant", "--port", "0",
                             "--port-file", str(port_file)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the bench server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"


async def raw_client(base_url: str, judge: Judge, requests: list[JudgeRequest]) -> float:
    """Requests/s of plain aiohttp posts of the same payloads: each body JSON-encoded and each response parsed
    inside the timed loop, as any client must (capeval also hashes the body for the cache key)."""
    payloads = [judge._payload(r) for r in requests]
    url = f"{base_url}/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    it = iter(payloads)
    texts = []
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            for payload in it:
                body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
                async with session.post(url, data=body, headers=headers) as resp:
                    doc = json.loads(await resp.read())
                    texts.append(doc["choices"][0]["message"]["content"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    assert len(texts) == len(payloads)
    return len(payloads) / elapsed


def capeval_client(judge: Judge, requests: list[JudgeRequest]) -> float:
    """Requests/s through Judge.run (cache lookups, AsyncOpenAI, retry loop, cache commits)."""
    start = time.perf_counter()
    replies = judge.run(requests)
    elapsed = time.perf_counter() - start
    assert all(r.ok and not r.cached for r in replies), "expected fresh calls"
    return len(requests) / elapsed


def cached_rate(base_url: str, n: int, tmp: Path) -> tuple[float, float]:
    """Judgments per wall-clock second and per CPU second when every request is already in the cache."""
    config = JudgeConfig(model="bench", base_url=base_url, cache_path=tmp / "cached.sqlite",
                         concurrency=CONCURRENCY, prices=None)
    requests = make_requests(n, "cached")
    with Judge(config) as judge:
        for r in requests:
            judge.cache.put(judge.key(r), "bench", '{"score": 50, "reason": "ok"}', 10, 5, "stop")
    with Judge(config) as judge:
        start, cpu = time.perf_counter(), time.process_time()
        replies = judge.run(requests)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(replies) == n and all(r.cached for r in replies)
    return n / elapsed, n / cpu


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cached", type=int, default=50000)
    args = ap.parse_args(argv)
    proc, base_url = start_server()
    raw_rates, capeval_rates, nocache_rates = [], [], []
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            for rnd in range(args.rounds):
                config = JudgeConfig(model="bench", base_url=base_url, cache_path=tmp / f"r{rnd}.sqlite",
                                     concurrency=CONCURRENCY, timeout=30)
                with Judge(config) as judge:
                    judge.run(make_requests(200, f"warm{rnd}"))  # connections and code paths warm
                    raw_rates.append(asyncio.run(raw_client(base_url, judge, make_requests(args.requests,
                                                                                          f"raw{rnd}"))))
                    capeval_rates.append(capeval_client(judge, make_requests(args.requests, f"cap{rnd}")))
                with Judge(config.replace(cache="off")) as judge:
                    nocache_rates.append(capeval_client(judge, make_requests(args.requests, f"off{rnd}")))
                print(f"round {rnd}: raw aiohttp {raw_rates[-1]:8.0f} req/s | capeval (cache on) "
                      f"{capeval_rates[-1]:8.0f} req/s | capeval (--no-cache) {nocache_rates[-1]:8.0f} req/s",
                      flush=True)
            cached, cached_cpu = cached_rate(base_url, args.cached, tmp)
    finally:
        proc.terminate()
        proc.wait(10)
    raw, cap, off = (statistics.median(x) for x in (raw_rates, capeval_rates, nocache_rates))
    ratio = statistics.median(c / r for c, r in zip(capeval_rates, raw_rates, strict=True))
    ratio_off = statistics.median(c / r for c, r in zip(nocache_rates, raw_rates, strict=True))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nconcurrency {CONCURRENCY}, {args.requests} requests x {args.rounds} rounds (medians; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}):")
    print(f"  raw aiohttp client          {raw:9.0f} req/s")
    print(f"  capeval judge path          {cap:9.0f} req/s   ratio {ratio:.2f}x (median per round; target >= 0.90)")
    print(f"  capeval judge, --no-cache   {off:9.0f} req/s   ratio {ratio_off:.2f}x")
    print(f"  cached judgments            {cached:9.0f} /s   ({args.cached} hits; target >= 20,000)")
    print(f"  cached judgments per CPU-s  {cached_cpu:9.0f} /s   (what one free core would do)")


if __name__ == "__main__":
    main()
