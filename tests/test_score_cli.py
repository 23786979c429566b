"""`capeval score` end to end: the run directory, summary.json's shape, manifest, errors, progress."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import capeval
from capeval.rundir import load_run

KEYS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory, thumb):
    refs, systems = thumb
    ids = list(refs)[:40]
    d = tmp_path_factory.mktemp("inputs")
    (d / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    for name in ["Up-Down", "VinVL-large"]:
        (d / f"{name}.json").write_text(json.dumps([{"image_id": i, "caption": systems[name][i]} for i in ids]))
    return d, ids


@pytest.mark.java
def test_score_writes_run_dir(small_inputs, tmp_path, monkeypatch):
    d, ids = small_inputs
    out = tmp_path / "run"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sentinel-should-never-be-written")
    proc = run_cli("score", "--refs", str(d / "refs.json"), "--cand", f"updown={d / 'Up-Down.json'}",
                   "--cand", f"vinvl={d / 'VinVL-large.json'}", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"captioners", "signatures"}
    assert list(summary["captioners"]) == ["updown", "vinvl"]
    for cap in summary["captioners"].values():
        assert list(cap) == KEYS
        for entry in cap.values():
            assert set(entry) == {"mean", "std", "n", "seeds"}
            assert isinstance(entry["mean"], float) and entry["std"] is None
            assert entry["n"] == 40 and entry["seeds"] == 1
    expected = f"cider|nrefs:4|n:4|sigma:6|df:refs|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{capeval.__version__}"
    assert summary["signatures"]["cider"] == expected
    scores = pd.read_parquet(out / "scores.parquet")
    assert list(scores.columns) == ["captioner", "sample_id", "metric", "seed", "value"]
    assert len(scores) == 2 * 40 * len(KEYS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["captioners"] == ["updown", "vinvl"]
    assert len(manifest["inputs"]["references"]["sha256"]) == 64
    assert set(manifest["inputs"]["candidates"]) == {"updown", "vinvl"}
    assert manifest["command"][:2] == ["capeval", "score"]
    assert manifest["started"] <= manifest["finished"]
    for f in out.rglob("*"):
        if f.is_file():
            assert b"sk-sentinel" not in f.read_bytes(), f
    run = load_run(out)
    assert run.captioners == ["updown", "vinvl"] and len(run.references) == 40
    assert proc.stdout.strip() == ""  # --quiet


def test_score_error_is_one_line(tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"1": ["a dog"]}))
    cand = tmp_path / "c.json"
    cand.write_text(json.dumps([{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]))
    proc = run_cli("score", "--refs", str(refs), "--cand", f"x={cand}", "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "c.json" in lines[0] and "id 1" in lines[0] and "duplicate id" in lines[0]
    assert not (tmp_path / "o").exists()


def test_unknown_metric_suggests(tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"1": ["a dog"]}))
    proc = run_cli("score", "--refs", str(refs), "--cand", f"x={refs}", "--out", str(tmp_path / "o"),
                   "--metrics", "cidr", "-q")
    assert proc.returncode == 2 and "Did you mean cider" in proc.stderr


@pytest.mark.java
def test_system_field_and_suite(tmp_path, shared_data):
    out = tmp_path / "thumb"
    proc = run_cli("score", "--refs", str(shared_data / "thumb" / "mscoco_references.jsonl"),
                   "--cand", str(shared_data / "thumb" / "mscoco_THumB-1.0.jsonl"), "--system-field", "SYS",
                   "--suite", "coco", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["suite"]["name"] == "coco" and manifest["suite"]["version"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["captioners"]) == {"Up-Down", "Unified-VLP", "VinVL-base", "VinVL-large", "Human"}
    assert summary["captioners"]["Human"]["cider"]["n"] == 500
    assert "VinVL-large" in proc.stdout  # the leaderboard is printed


def test_metrics_command_lists_availability():
    proc = run_cli("metrics", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["bleu"]["available"] is True and rows["bleu"]["outputs"] == ["bleu_1", "bleu_2", "bleu_3", "bleu_4"]
    assert rows["cider"]["needs"] == ["references"]
    assert rows["spice"]["available"] is False and "CoreNLP" in rows["spice"]["reason"]


def test_every_command_has_help_with_example():
    import typer.main

    from capeval.cli import app

    def leaves(cmd, prefix):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from leaves(sub, f"{prefix} {name}")
        else:
            yield prefix, cmd

    found = list(leaves(typer.main.get_command(app), "capeval"))
    assert len(found) >= 12
    for name, cmd in found:
        assert cmd.help and "Example" in cmd.help, f"`{name}` lacks help with an Example"
