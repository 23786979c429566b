"""proxy_qa end to end against the real local judge: `capeval judge serve` (SmolLM2-135M via xllamacpp).

The tiny model answers poorly; the test checks the real path, not the model: every question is asked,
every reply is either scored or counted as unparsable, mean±std over seeds lands in summary.json, and a
rerun is answered entirely from the cache with identical results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from capeval.judges.serve import local_judge_available
from capeval.proxyqa.questions import load_questions

ok, why = local_judge_available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not ok, reason=why)]

IMAGES = ["974", "2453"]  # 4 questions of the shipped set: 2 captioners x 2 seeds x 4 = 16 calls


def _die_with_parent() -> None:
    """In the server process: get SIGTERM when the test process dies, even if it is killed (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="module")
def local_judge(tmp_path_factory):
    port_file = tmp_path_factory.mktemp("judge") / "port"
    log = port_file.with_name("serve.log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "capeval", "judge", "serve", "--port", "0", "--port-file", str(port_file),
         "--threads", "1", "--parallel", "1", "--ctx", "1024"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + 180
        while not port_file.exists():
            if proc.poll() is not None:
                pytest.fail(f"capeval judge serve exited: {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail("capeval judge serve did not come up within 180 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _run(base_url: str, cands: list[str], out: Path, cache: Path) -> dict:
    from capeval.cli import main

    main(["proxy-qa", "-Q", "thumb", *[a for c in cands for a in ("--cand", c)], "--out", str(out),
          "--seeds", "2", "--unanswerable", "--judge-model", "smollm2", "--judge-base-url", base_url,
          "--option", f"judge_cache={cache}", "--option", "judge_max_tokens=8", "--quiet"])
    return json.loads((out / "summary.json").read_text())


@pytest.mark.timeout(600)
def test_proxy_qa_against_capeval_judge_serve(local_judge, thumb, tmp_path):
    _, systems = thumb
    cands = []
    for name in ("Human", "Up-Down"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({i: systems[name][i] for i in IMAGES}))
        cands.append(f"{name}={path}")
    asked = sum(len(load_questions("thumb").by_image[i]) for i in IMAGES)

    started = time.monotonic()
    first = _run(local_judge, cands, tmp_path / "run1", tmp_path / "cache.sqlite")
    elapsed = time.monotonic() - started
    details = pd.read_parquet(tmp_path / "run1" / "details.parquet")
    for name in ("Human", "Up-Down"):
        row = first["captioners"][name]["proxy_qa"]
        assert row["seeds"] == 2
        assert row["mean"] is not None and 0.0 <= row["mean"] <= 1.0
        records = [r for d in details[details.captioner == name]["detail"].dropna() for r in json.loads(d)]
        assert len(records) == 2 * asked  # every question asked once per seed
        unparsable = sum(r["score"] is None for r in records)
        assert first.get("failures", {}).get(name, {}).get("proxy_qa", 0) == unparsable
        assert unparsable < len(records) / 2, f"{unparsable} of {len(records)} replies unparsable"
        assert all(r["reply"] for r in records)
    usage = first["usage"]["proxy_qa"]
    assert usage["judge_calls"] >= 2 * 2 * asked and usage["judge_errors"] == 0
    print(f"\nproxy_qa via SmolLM2: {2 * 2 * asked} questions in {elapsed:.1f}s; "
          + "; ".join(f"{n}: {first['captioners'][n]['proxy_qa']}" for n in ("Human", "Up-Down"))
          + f"; unparsable {first.get('failures', {})}")

    second = _run(local_judge, cands, tmp_path / "run2", tmp_path / "cache.sqlite")
    assert second["usage"]["proxy_qa"]["judge_calls"] == 0  # everything from the cache
    assert second["captioners"] == first["captioners"]
    assert os.path.getsize(tmp_path / "cache.sqlite") > 0
