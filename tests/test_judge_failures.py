"""A judge run that fails is never a silent success: a one-line account on stderr and exit 3 (issue 12)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from capeval.judges.failures import EXIT_JUDGE_FAILED, JudgeFailures, gate_problems, judge_failures
from capeval.judges.faultserver import FaultServer

FAST = ["--option", "judge_retries=0", "--option", "judge_timeout=5"]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inputs(tmp_path):
    refs = {str(i): [f"a reference about picture {i}"] for i in range(10)}
    cands = {str(i): ("mute caption" if i == 0 else f"caption {i}") for i in range(10)}
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "mine.json").write_text(json.dumps(cands))
    env = {**os.environ, "CAPEVAL_CACHE_DIR": str(tmp_path / "cache")}
    return tmp_path, env


def mute_responder(payload):
    first_user = next(m for m in payload["messages"] if m["role"] == "user")["content"]
    if "mute caption" in first_user:
        return "I would rather not say."  # unreadable, also after the follow-up
    return json.dumps({"score": 70, "reason": "fine"})


def test_nothing_listening_exits_3_naming_endpoint_and_kind(inputs):
    d, env = inputs
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = run_cli("score", "--refs", str(d / "refs.json"), "--cand", str(d / "mine.json"), "--out", str(d / "run"),
                   "--metrics", "clair", "--judge-base-url", url, "--judge-model", "m", "--quiet", *FAST, env=env)
    assert proc.returncode == EXIT_JUDGE_FAILED == 3, proc.stderr
    assert proc.stdout == ""
    lines = [x for x in proc.stderr.splitlines() if "judge" in x and "price table" not in x]
    assert lines[0] == f"capeval: judge failures at {url}: clair 10/10 failed (connection 10)"
    assert url in lines[1] and "no successful judgment" in lines[1] and "connection 10" in lines[1]
    summary = json.loads((d / "run" / "summary.json").read_text())  # the run is still written
    assert summary["usage"]["clair"]["judge_failed_connection"] == 10
    assert summary["captioners"]["mine"]["clair"]["mean"] is None


def test_failure_rate_against_max_failure_rate(inputs):
    d, env = inputs
    with FaultServer(responder=mute_responder) as server:
        args = ["score", "--refs", str(d / "refs.json"), "--cand", str(d / "mine.json"), "--metrics", "clair",
                "--judge-base-url", server.base_url, "--judge-model", "fault", "--quiet", *FAST]
        ok = run_cli(*args, "--out", str(d / "ok"), env=env)  # 1 of 10 failed: 10% <= 20% (the default)
        strict = run_cli(*args, "--out", str(d / "strict"), "--max-failure-rate", "0.05", env=env)
    assert ok.returncode == 0, ok.stderr
    account = f"capeval: judge failures at {server.base_url}: clair 1/10 failed (unreadable 1)"
    assert account in ok.stderr.splitlines()
    assert strict.returncode == 3
    assert account in strict.stderr.splitlines()
    assert re.search(r"clair: 10% of judgments failed \(1/10: unreadable 1\), above --max-failure-rate 0.05",
                     strict.stderr)


def test_no_failures_no_account_line(inputs):
    d, env = inputs
    (d / "mine.json").write_text(json.dumps({str(i): f"caption {i}" for i in range(10)}))
    with FaultServer(responder=mute_responder) as server:
        proc = run_cli("score", "--refs", str(d / "refs.json"), "--cand", str(d / "mine.json"), "--out",
                       str(d / "run"), "--metrics", "clair", "--judge-base-url", server.base_url,
                       "--judge-model", "fault", "--quiet", *FAST, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "judge failures" not in proc.stderr


def test_max_failure_rate_out_of_range_is_a_usage_error(inputs):
    d, env = inputs
    proc = run_cli("score", "--refs", str(d / "refs.json"), "--cand", str(d / "mine.json"), "--out", str(d / "r"),
                   "--metrics", "bleu", "--max-failure-rate", "1.5", env=env)
    assert proc.returncode == 2 and "--max-failure-rate" in proc.stderr


def test_account_and_gate_rules():
    usage = {"clair": {"judge_judgments": 20.0, "judge_failed_timeout": 3.0, "judge_failed_unreadable": 1.0},
             "cider": {}}
    (acc,) = judge_failures(usage)
    assert (acc.metric, acc.judgments, acc.failed, acc.rate) == ("clair", 20, 4, 0.2)
    assert acc.describe() == "clair 4/20 failed (timeout 3, unreadable 1)"
    assert gate_problems([acc], 0.2) == []  # exactly at the limit passes
    assert gate_problems([acc], 0.19) == ["clair: 20% of judgments failed (4/20: timeout 3, unreadable 1), above "
                                          "--max-failure-rate 0.19"]
    assert gate_problems([JudgeFailures("clair", 0, {})], 0.2) == []
    assert gate_problems([JudgeFailures("pairwise", 4, {"http_500": 4})], 1.0) == [
        "pairwise: no successful judgment (4/4 failed: http_500 4)"]
