"""`capeval score --judge-endpoints`: an endpoint killed mid-run, and the driver killed with SIGKILL then rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("openai")

N_IMAGES = 60


class ServerProcess:
    """A fault server in its own process (so it can be killed with SIGKILL)."""

    def __init__(self, *args: str) -> None:
        port_file = Path(tempfile.mkdtemp()) / "port"
        self.proc = subprocess.Popen([sys.executable, "-m", "capeval.judges.faultserver", "--port", "0",
                                      "--port-file", str(port_file), *args], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, "fault server did not start"
            time.sleep(0.05)
        self.root = f"http://127.0.0.1:{port_file.read_text()}"
        self.base_url = self.root + "/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.root + "/stats", timeout=10) as r:
            return json.loads(r.read())

    def release(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.root + "/release", method="POST"), timeout=10).read()

    def wait_for(self, completed: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.stats()["completed"] < completed:
            assert time.monotonic() < deadline, f"server saw {self.stats()} before {timeout}s"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def inputs(thumb, tmp_path):
    refs, systems = thumb
    ids = list(refs)[:N_IMAGES]
    (tmp_path / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    cands = []
    for name in list(systems)[:2]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({i: systems[name][i] for i in ids}))
        cands += ["--cand", f"{name}={path}"]
    return tmp_path, cands


def _score(tmp: Path, cands: list[str], out: str, cache: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "capeval", "score", "--refs", str(tmp / "refs.json"), *cands, "-m", "clair",
            "--out", str(tmp / out), "--option", f"judge_cache={tmp / cache}", "--quiet", *extra]


def _endpoints(tmp: Path, *servers: ServerProcess) -> Path:
    path = tmp / "endpoints.yaml"
    lines = ["model: fake-judge", "endpoints:"]
    for k, s in enumerate(servers):
        lines += [f"  - name: ep{k}", f"    base_url: {s.base_url}", "    concurrency: 4"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary(run: Path) -> dict:
    doc = json.loads((run / "summary.json").read_text())
    return {cap: m["clair"] for cap, m in doc["captioners"].items()}


@pytest.mark.slow
def test_endpoint_killed_mid_run(inputs):
    tmp, cands = inputs
    a, b = ServerProcess(), ServerProcess("--hold-after", "30")
    try:
        eps = _endpoints(tmp, a, b)
        run = subprocess.Popen(_score(tmp, cands, "pooled", "pool.sqlite", "--judge-endpoints", str(eps),
                                      "--option", "judge_timeout=20"), stderr=subprocess.PIPE, text=True)
        b.wait_for(30)
        while b.stats()["requests"] <= 30:  # requests held at b: the kill drops them mid-flight
            time.sleep(0.05)
        b.kill()
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        scores = pd.read_parquet(tmp / "pooled" / "scores.parquet")
        assert len(scores) == 2 * N_IMAGES and scores["value"].notna().all()
        assert not scores.duplicated(["captioner", "sample_id", "seed"]).any()
        usage = json.loads((tmp / "pooled" / "manifest.json").read_text())["usage"]["clair"]
        assert a.stats()["repeated_completions"] == 0
        single = subprocess.run(_score(tmp, cands, "single", "single.sqlite", "--judge-base-url", a.base_url,
                                       "--judge-model", "fake-judge"), capture_output=True, text=True, timeout=600)
        assert single.returncode == 0, single.stderr
        assert _summary(tmp / "pooled") == _summary(tmp / "single")
        one = json.loads((tmp / "single" / "manifest.json").read_text())["usage"]["clair"]
        distinct = one["judge_calls"]  # identical (caption, references) pairs are one judgment
        assert usage["judge_calls"] == distinct and usage["judge_errors"] == 0  # every judgment counted once
        assert usage["endpoint:ep1:completed"] == 30 and usage["endpoint:ep1:errors"] >= 1
        assert usage["endpoint:ep0:completed"] == distinct - 30 and usage["judge_failovers"] >= 1
    finally:
        a.kill()
        b.kill()


@pytest.mark.slow
def test_driver_killed_then_rerun_repeats_no_completed_call(inputs):
    tmp, cands = inputs
    server = ServerProcess("--hold-after", "50", "--delay", "0.01")
    try:
        eps = _endpoints(tmp, server)
        cmd = _score(tmp, cands, "run", "cache.sqlite", "--judge-endpoints", str(eps))
        driver = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
        server.wait_for(50)
        time.sleep(1.0)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
        assert not (tmp / "run" / "manifest.json").exists()
        server.release()
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        stats = server.stats()
        assert stats["repeated_completions"] == 0  # counted at the server
        assert stats["completed"] == stats["distinct"]
        usage = json.loads((tmp / "run" / "manifest.json").read_text())["usage"]["clair"]
        assert usage["judge_calls"] == stats["distinct"] - 50  # the rerun asked only what was not completed
        assert usage["judge_cache_hits"] >= 50
    finally:
        server.kill()
