"""No option, flag or URL carries a secret into any file, the cache, the report, stdout or stderr (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from capeval.errors import CapevalError
from capeval.judges.config import JudgeConfig
from capeval.judges.faultserver import FaultServer
from capeval.secrets import is_secret_name, public_options, redact_command, redact_text

SENTINELS = {
    "env": "sk-SENTINELenv0123456789",
    "header": "SENTINELhdr0123456789",
    "shaped": "sk-SENTINELshaped012345",
    "query": "SENTINELqry0123456789",
}


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def _inputs(tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"1": ["a dog runs on the grass", "a brown dog"], "2": ["a cat sleeps", "a cat"]}))
    cands = tmp_path / "mine.json"
    cands.write_text(json.dumps({"1": "a dog on grass", "2": "a sleeping cat"}))
    return refs, cands


def _env(tmp_path):
    env = dict(os.environ)
    env.update({"OPENAI_API_KEY": SENTINELS["env"], "CAPEVAL_CACHE_DIR": str(tmp_path / "cache"),
                "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ) if p)})
    return env


def _files_under(path):
    return [p for p in path.rglob("*") if p.is_file()]


@pytest.mark.java
def test_no_secret_reaches_run_dir_cache_report_stdout_or_stderr(tmp_path):
    refs, cands = _inputs(tmp_path)
    out = tmp_path / "run"
    env = _env(tmp_path)
    with FaultServer() as server:
        proc = run_cli(
            "score", "--refs", str(refs), "--cand", f"mine={cands}", "--out", str(out), "--metrics", "bleu,clair",
            "--judge-base-url", server.base_url, "--judge-model", "fault",
            # free-text values reach the run only through real options: several headers in judge_headers
            "--option", f"judge_headers=Authorization: Bearer {SENTINELS['header']}; X-Note: see "
                        f"{SENTINELS['shaped']}; X-Mirror: http://example.invalid/x?api_key={SENTINELS['query']}",
            env=env)
        assert proc.returncode == 0, proc.stderr
        assert server.state.completed > 0  # the judge was really called (with the key from the environment)
    report = tmp_path / "report.html"
    rep = run_cli("report", str(out), "-o", str(report), "--no-stats", env=env)
    assert rep.returncode == 0, rep.stderr
    places = {"stdout": proc.stdout + rep.stdout, "stderr": proc.stderr + rep.stderr}
    for f in [*_files_under(out), *_files_under(tmp_path / "cache"), report]:
        places[str(f)] = f.read_bytes().decode("utf-8", "replace")
    assert len(places) > 8 and any("judge-cache" in k for k in places)
    for where, text in places.items():
        for name, sentinel in SENTINELS.items():
            assert sentinel not in text, f"{name} secret found in {where}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["judge_headers"] == "Authorization: ***; X-Note: ***; X-Mirror: ***"
    assert any(a == "judge_headers=Authorization: ***; X-Note: ***; X-Mirror: ***" for a in manifest["command"])


@pytest.mark.parametrize("option", ["judge_api_key", "api_key", "hf_token", "judge_password", "openai-api-key"])
def test_key_like_option_is_refused_naming_the_environment_variable(tmp_path, option):
    refs, cands = _inputs(tmp_path)
    out = tmp_path / "run"
    proc = run_cli("score", "--refs", str(refs), "--cand", str(cands), "--out", str(out), "--metrics", "bleu",
                   "--option", f"{option}={SENTINELS['shaped']}", "--quiet", env=_env(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert f"option {option}" in proc.stderr and "OPENAI_API_KEY" in proc.stderr
    assert SENTINELS["shaped"] not in proc.stderr + proc.stdout
    assert not out.exists()


def test_key_like_option_is_refused_by_the_python_api():
    with pytest.raises(CapevalError, match="MY_KEY"):
        JudgeConfig.from_options({"judge_api_key": "x", "judge_api_key_env": "MY_KEY"})


@pytest.mark.parametrize(("url", "problem"), [
    ("http://user:{s}@127.0.0.1:9/v1", "user-info"),
    ("http://:{s}@127.0.0.1:9/v1", "user-info"),
    ("http://127.0.0.1:9/v1?key={s}", "query string"),
    ("http://127.0.0.1:9/v1#{s}", "query string"),
    ("ftp://127.0.0.1/{s}", "http:// or https://"),
])
def test_base_url_with_credentials_or_query_is_refused_in_one_line(tmp_path, url, problem):
    url = url.format(s=SENTINELS["query"])
    refs, cands = _inputs(tmp_path)
    proc = run_cli("score", "--refs", str(refs), "--cand", str(cands), "--out", str(tmp_path / "run"),
                   "--metrics", "clair", "--judge-base-url", url, "--judge-model", "m", "--quiet",
                   env=_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert problem in proc.stderr
    if problem != "http:// or https://":
        assert SENTINELS["query"] not in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists()


def test_is_secret_name_table():
    secret = ["judge_api_key", "api-key", "OPENAI_API_KEY", "hf_token", "access_token", "db_password", "auth",
              "client_secret", "--api-key", "cookie"]
    plain = ["judge_max_tokens", "judge_api_key_env", "judge_model", "judge_tpm", "keyword", "monkey",
             "tokenizer", "judge_base_url", "judge_headers"]
    assert [n for n in secret if not is_secret_name(n)] == []
    assert [n for n in plain if is_secret_name(n)] == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def", "Authorization: ***"),
    ("authorization=Basic dXNlcjpwYXNz", "authorization=***"),
    ("x-api-key: abc123", "x-api-key: ***"),
    ("http://user:pw@host:1/v1", "http://***@host:1/v1"),
    ("https://host/v1?key=K&model=m", "https://host/v1?key=***&model=m"),
    ("use sk-proj-abcdefghijklmnop now", "use *** now"),
    ("hf_abcdefghijklmnopqrstu", "***"),
    ("a plain caption about a red bus", "a plain caption about a red bus"),
    ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
])
def test_redact_text_table(text, expected):
    assert redact_text(text) == expected


def test_public_options_and_command_redaction():
    opts = {"judge_api_key": "s1", "judge_headers": {"Authorization": "Bearer s2", "X-Org": "o"},
            "judge_max_tokens": 64, "judge_base_url": "http://127.0.0.1:8080/v1"}
    assert public_options(opts) == {"judge_headers": {"Authorization": "***", "X-Org": "***"},
                                    "judge_max_tokens": 64, "judge_base_url": "http://127.0.0.1:8080/v1"}
    argv = ["capeval", "score", "--option", "judge_api_key=s1", "--option=judge_headers=Authorization: Bearer s2",
            "--api-key", "s3", "--token=s4", "--judge-base-url", "http://u:s5@h/v1"]
    redacted = redact_command(argv)
    assert not any(s in " ".join(redacted) for s in ("s1", "s2", "s3", "s4", "s5"))
    assert redacted[:3] == ["capeval", "score", "--option"]
