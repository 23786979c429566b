"""SIGKILL a `capeval score` judge run midway, rerun it: no completed call is repeated, results are identical.

Also: a sentinel API key reaches the endpoint but no file of the run directory or the cache.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from capeval.judges.faultserver import FaultServer
from capeval.judges.protocol import cache_key
from capeval.judges.templates import load_template

N_SAMPLES = 40
SEEDS = 3
CAPTIONERS = ("alpha", "beta")
TOTAL = N_SAMPLES * SEEDS * len(CAPTIONERS)


def write_inputs(tmp: Path) -> tuple[Path, dict[str, Path]]:
    refs = {str(i): [f"a photo of object {i}", f"object number {i} on a table"] for i in range(N_SAMPLES)}
    ref_path = tmp / "refs.json"
    ref_path.write_text(json.dumps(refs))
    cands = {}
    for name in CAPTIONERS:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps({str(i): f"{name} sees object {i}" for i in range(N_SAMPLES)}))
        cands[name] = path
    return ref_path, cands


def score_cmd(base_url: str, refs: Path, cands: dict[str, Path], out: Path, cache: Path,
              extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "capeval", "score", "--refs", str(refs), "--out", str(out), "--metrics", "clair",
           "--seeds", str(SEEDS), "--judge-base-url", base_url, "--judge-model", "fault", "--quiet",
           "--option", f"judge_cache={cache}", "--option", "judge_concurrency=2", *extra]
    for name, path in cands.items():
        cmd += ["--cand", f"{name}={path}"]
    return cmd


def cache_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT key FROM judgments")}
    except sqlite3.DatabaseError:  # the file or its table is not created yet
        return set()
    finally:
        conn.close()


def payload_key(payload: dict, template_hash: str) -> str:
    """The cache key capeval computed for the request the server received."""
    params = {k: payload[k] for k in ("temperature", "max_tokens", "top_p", "response_format") if k in payload}
    return cache_key(payload["model"], payload["messages"], params, payload.get("seed"), template_hash)


def env_for(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CAPEVAL_CACHE_DIR"] = str(tmp / "default-cache")
    env.pop("OPENAI_API_KEY", None)
    return env


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """An uninterrupted run with its own cache and server (replies are a pure function of the request)."""
    tmp = tmp_path_factory.mktemp("clean")
    refs, cands = write_inputs(tmp)
    with FaultServer() as server:
        subprocess.run(score_cmd(server.base_url, refs, cands, tmp / "run", tmp / "clean.sqlite"),
                       env=env_for(tmp), check=True, capture_output=True, timeout=240)
    return tmp / "run"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kill_after", [1, 150])
def test_sigkill_then_rerun_repeats_no_completed_call(tmp_path, kill_after, clean_run):
    refs, cands = write_inputs(tmp_path)
    template_hash = load_template("clair-v2").hash
    cache = tmp_path / "cache.sqlite"
    run = tmp_path / "run"
    with FaultServer(record=True, delay=0.02) as server:
        # 1. start the run and SIGKILL it once `kill_after` replies are committed to the cache
        proc = subprocess.Popen(score_cmd(server.base_url, refs, cands, run, cache), env=env_for(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        try:
            while len(cache_keys(cache)) < kill_after:
                assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()}"
                assert time.monotonic() < deadline, "the run never reached the kill point"
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        done_before = cache_keys(cache)
        assert kill_after <= len(done_before) < TOTAL, "the kill must land midway"
        assert not (run / "manifest.json").exists()

        # 2. the same command again, to the end
        server.state.payloads.clear()
        subprocess.run(score_cmd(server.base_url, refs, cands, run, cache), env=env_for(tmp_path), check=True,
                       capture_output=True, timeout=240)
        asked_again = [payload_key(p, template_hash) for p in server.state.payloads]


    assert not set(asked_again) & done_before, "a call completed before the kill was sent again"
    assert len(asked_again) == len(set(asked_again)), "a call was sent twice in the rerun"
    assert len(asked_again) == TOTAL - len(done_before)
    assert done_before | set(asked_again) == cache_keys(cache)
    assert len(cache_keys(cache)) == TOTAL

    def scores(path: Path) -> pd.DataFrame:
        df = pd.read_parquet(path / "scores.parquet")
        return df.sort_values(["captioner", "sample_id", "metric", "seed"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(scores(run), scores(clean_run))
    resumed = json.loads((run / "summary.json").read_text())
    clean = json.loads((clean_run / "summary.json").read_text())
    assert resumed["captioners"] == clean["captioners"]
    assert resumed["captioners"]["alpha"]["clair"]["seeds"] == SEEDS
    assert resumed["usage"]["clair"]["judge_cache_hits"] == len(done_before)
    assert resumed["usage"]["clair"]["judge_calls"] == TOTAL - len(done_before)


@pytest.mark.timeout(300)
def test_api_key_reaches_the_endpoint_but_no_file(tmp_path):
    sentinel = "sk-capeval-SENTINEL-7f3a9c1e5b"
    refs, cands = write_inputs(tmp_path)
    cache = tmp_path / "cachedir" / "judge.sqlite"
    run = tmp_path / "run"
    env = env_for(tmp_path)
    env["CAPEVAL_TEST_JUDGE_KEY"] = sentinel
    with FaultServer() as server:
        proc = subprocess.run(
            score_cmd(server.base_url, refs, cands, run, cache,
                      extra=("--option", "judge_api_key_env=CAPEVAL_TEST_JUDGE_KEY")),
            env=env, capture_output=True, timeout=240)
        assert proc.returncode == 0, proc.stderr.decode()
        assert f"Bearer {sentinel}" in server.state.authorization  # the key really was used
    assert sentinel.encode() not in proc.stdout + proc.stderr
    files = [p for p in [*run.rglob("*"), *cache.parent.rglob("*"), *(tmp_path / "default-cache").rglob("*")]
             if p.is_file()]
    assert any(p.name == "manifest.json" for p in files) and any(p.name == "judge.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        assert sentinel.encode() not in data, f"the API key leaked into {path}"
        assert b"SENTINEL" not in data, f"part of the API key leaked into {path}"


def test_no_command_line_flag_takes_an_api_key():
    out = subprocess.run([sys.executable, "-m", "capeval", "score", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0
    assert "api-key" not in out.stdout.lower() and "api_key" not in out.stdout.lower()


def test_corrupt_cache_stops_the_cli_with_one_clear_line(tmp_path):
    refs, cands = write_inputs(tmp_path)
    cache = tmp_path / "broken.sqlite"
    cache.write_bytes(b"not a database" * 100)
    with FaultServer() as server:
        proc = subprocess.run(score_cmd(server.base_url, refs, cands, tmp_path / "run", cache),
                              env=env_for(tmp_path), capture_output=True, text=True, timeout=240)
        assert server.state.requests == 0  # nothing was re-spent
    assert proc.returncode == 2
    assert "broken.sqlite is corrupt" in proc.stderr and "Traceback" not in proc.stderr
