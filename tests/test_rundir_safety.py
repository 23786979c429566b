"""Run directories are written whole and never lose data (issue 12 item 3); the check gate fails on a missing or
failed gated metric (issue 12 item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capeval
from capeval.errors import CapevalError
from capeval.rundir import load_run

REFS = {str(i): [f"a dog runs on the grass {i}", "a dog is running"] for i in range(6)}
CANDS = {"s": {str(i): f"a dog runs {i}" for i in range(6)}}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_out_dot_never_overwrites_the_references(tmp_path):
    refs = tmp_path / "references.json"
    refs.write_text(json.dumps(REFS))
    cand = tmp_path / "cand.json"
    cand.write_text(json.dumps(CANDS["s"]))
    before = refs.read_bytes()
    for extra in ([], ["--overwrite"]):
        proc = _cli("score", "--refs", "references.json", "--cand", "s=cand.json", "--metrics", "rouge_l",
                    "--out", ".", *extra, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "overwrite its input references.json" in proc.stderr and proc.stderr.count("\n") == 1
    assert refs.read_bytes() == before


def test_out_with_foreign_files_needs_overwrite_and_keeps_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = capeval.evaluate(REFS, CANDS, metrics=["rouge_l"])
    with pytest.raises(CapevalError, match="not empty and not a capeval run"):
        r.write(out)
    r.write(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert load_run(out).captioners == ["s"]


def test_rescoring_replaces_the_whole_run(tmp_path):
    out = tmp_path / "run"
    first = capeval.evaluate(REFS, CANDS, metrics=["rouge_l"])
    first.details = pd.DataFrame({"captioner": ["s"], "sample_id": ["0"], "metric": ["clair"], "seed": [0],
                                  "detail": ["an old CLAIR reason"]})
    first.write(out)
    assert (out / "details.parquet").exists()
    capeval.evaluate(REFS, {"s": {k: "a cat" for k in CANDS["s"]}}, metrics=["rouge_l"]).write(out)
    assert not (out / "details.parquet").exists()  # nothing of the previous run is left
    assert not list(tmp_path.glob(".run.capeval-*"))


def test_a_failed_write_leaves_the_previous_run_whole(tmp_path, monkeypatch):
    out = tmp_path / "run"
    capeval.evaluate(REFS, CANDS, metrics=["rouge_l"]).write(out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    new = capeval.evaluate(REFS, {"s": {k: "a cat" for k in CANDS["s"]}}, metrics=["rouge_l"])

    import capeval.rundir as rundir

    real = rundir._write_json

    def failing(path, obj):
        if path.name == "summary.json":
            raise OSError("disk full")
        real(path, obj)

    monkeypatch.setattr(rundir, "_write_json", failing)
    with pytest.raises(OSError, match="disk full"):
        new.write(out)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # manifest, summary and scores all of the previous run
    assert not list(tmp_path.glob(".run.capeval-*"))


# --- the check gate -----------------------------------------------------------------------------------------

def _rouge_run(path: Path, n: int = 8) -> Path:
    ids = [str(i) for i in range(n)]
    r = capeval.evaluate({i: [f"reference {i}"] for i in ids}, {"s": {i: f"caption {i}" for i in ids}},
                         metrics=["rouge_l"])
    return r.write(path)


def _add_mean_metric(path: Path, metric: str, values: np.ndarray) -> Path:
    """Add a per-sample-mean metric with these values (NaN = failed) to a run directory."""
    ids = [str(i) for i in range(len(values))]
    mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    scores = pd.read_parquet(path / "scores.parquet")
    extra = pd.DataFrame({"captioner": "s", "sample_id": ids, "metric": metric, "seed": 0, "value": values})
    pd.concat([scores, extra], ignore_index=True).to_parquet(path / "scores.parquet", index=False)
    corpus = pd.read_parquet(path / "corpus.parquet")
    row = pd.DataFrame([{"captioner": "s", "metric": metric, "seed": 0, "value": mean}])
    pd.concat([corpus, row], ignore_index=True).to_parquet(path / "corpus.parquet", index=False)
    pd.DataFrame({"captioner": "s", "seed": 0, "sample_id": ids, metric: values}).to_parquet(
        path / "statistics" / f"{metric}.parquet", index=False)
    sig = f"{metric}|judge:fake|v:1|capeval:{capeval.__version__}"
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["metrics"][metric] = {"outputs": [metric], "version": "1", "stochastic": True, "corpus_level": False,
                                   "aggregation": "mean", "higher_is_better": True}
    manifest["signatures"][metric] = sig
    (path / "manifest.json").write_text(json.dumps(manifest))
    summary = json.loads((path / "summary.json").read_text())
    summary["captioners"]["s"][metric] = {"mean": None if np.isnan(mean) else mean, "std": None,
                                          "n": int(np.isfinite(values).sum()), "seeds": 1}
    summary["signatures"][metric] = sig
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_check_fails_when_every_judgment_failed(tmp_path):
    base = _add_mean_metric(_rouge_run(tmp_path / "base"), "clair", np.full(8, 0.7))
    failed = _add_mean_metric(_rouge_run(tmp_path / "failed"), "clair", np.full(8, np.nan))
    proc = _cli("check", str(failed), "--baseline", str(base))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed in the run" in proc.stdout


def test_check_fails_when_a_gated_metric_is_missing(tmp_path):
    base = _add_mean_metric(_rouge_run(tmp_path / "base"), "clair", np.full(8, 0.7))
    new = _rouge_run(tmp_path / "new")  # clair was dropped from the run
    assert _cli("check", str(new), "--baseline", str(base)).returncode == 0  # not gated: a note only
    proc = _cli("check", str(new), "--baseline", str(base), "--tolerance", "clair=0.02")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "missing from the run" in proc.stdout


def test_check_exit_2_on_malformed_files(tmp_path):
    base = _rouge_run(tmp_path / "base")
    bad = _rouge_run(tmp_path / "bad")
    (bad / "manifest.json").write_text(json.dumps(["not", "a", "manifest"]))
    proc = _cli("check", str(bad), "--baseline", str(base))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "manifest.json" in proc.stderr
