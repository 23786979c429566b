"""End to end with a real local judge (SmolLM2-135M served by `capeval judge serve`), as CI runs it.

`capeval score --metrics clair --seeds 3` against the server. The tiny model's judgments are poor; the test
checks the machinery (server, client, cache, parsing, seeds, usage), not the judgments.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sig_helpers import judge_tail

from capeval.judges.serve import local_judge_available

N_SAMPLES = 8
AVAILABLE, WHY = local_judge_available()

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not AVAILABLE, reason=WHY)]


def listening_addresses(port: int) -> list[str]:
    """Local addresses of TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if int(hexport, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.append(addr)
    return found


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    """`capeval judge serve --port 0` in the background; stopped (SIGTERM, then SIGKILL) at the end."""
    tmp = tmp_path_factory.mktemp("serve")
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, "-m", "capeval", "judge", "serve", "--port", "0", "--port-file",
                             str(port_file), "--threads", "1", "--parallel", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not port_file.exists():
            if proc.poll() is not None:
                pytest.fail(f"capeval judge serve exited: {proc.stdout.read()}")
            if time.monotonic() > deadline:
                pytest.fail("capeval judge serve did not start within 300 s")
            time.sleep(0.2)
        yield int(port_file.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()


def test_server_listens_on_loopback_only(judge_server):
    addrs = listening_addresses(judge_server)
    if not addrs:
        pytest.skip("no /proc/net/tcp here")
    assert set(addrs) <= {"0100007F", "00000000000000000000000001000000"}, addrs  # 127.0.0.1 / ::1


@pytest.mark.timeout(1200)
def test_clair_three_seeds_end_to_end(judge_server, thumb, tmp_path):
    refs, systems = thumb
    ids = list(refs)[:N_SAMPLES]
    (tmp_path / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    (tmp_path / "cand.json").write_text(json.dumps({i: systems["Up-Down"][i] for i in ids}))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "capeval", "score", "--refs", str(tmp_path / "refs.json"),
           "--cand", f"updown={tmp_path / 'cand.json'}", "--metrics", "clair", "--seeds", "3",
           "--judge-base-url", f"http://127.0.0.1:{judge_server}/v1", "--judge-model", "smollm2",
           "--option", f"judge_cache={tmp_path / 'cache.sqlite'}", "--option", "judge_max_tokens=32",
           "--out", str(run), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1100)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    clair = summary["captioners"]["updown"]["clair"]
    assert clair["seeds"] == 3
    assert clair["n"] > 0
    assert clair["mean"] is not None and 0.0 <= clair["mean"] <= 1.0
    assert clair["std"] is not None and math.isfinite(clair["std"])
    tail = judge_tail("clair-v2", f"http://127.0.0.1:{judge_server}/v1", 32, v="2")
    assert summary["signatures"]["clair"] == "clair|judge:smollm2|prompt:clair-v2|temp:0.7|seeds:3|" + tail
    usage = summary["usage"]["clair"]
    assert usage["judge_calls"] >= 3 * N_SAMPLES and usage["completion_tokens"] > 0
    assert usage["cost_usd"] == 0.0
    failures = summary.get("failures", {}).get("updown", {}).get("clair", 0)
    scores = pd.read_parquet(run / "scores.parquet")
    assert len(scores) == 3 * N_SAMPLES
    assert int(scores["value"].notna().sum()) + failures == 3 * N_SAMPLES  # every judgment scored or counted
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["usage"]["clair"]["judge_calls"] == usage["judge_calls"]
    # the same command again is answered from the cache: identical summary, no new calls
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    again = json.loads((run / "summary.json").read_text())
    assert again["captioners"] == summary["captioners"]
    assert again["usage"]["clair"]["judge_calls"] == 0
    assert again["usage"]["clair"]["judge_cache_hits"] == usage["judge_calls"]
