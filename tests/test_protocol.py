"""Metric protocol v2: per-sample statistics + one aggregation rule stored in the run (issue 11).

Hand-computed values for each rule and metric, the run directory's statistics, consumers that never score
again (no Java needed after `capeval score`), typed options and the one comparability rule.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capeval
from capeval.aggregation import aggregate, bleu_from_totals, get_rule, meteor_from_totals
from capeval.errors import CapevalError
from capeval.java import java_problem
from capeval.rundir import load_run

needs_java = pytest.mark.skipif(java_problem() is not None, reason="needs Java (pycocoevalcap)")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thumb"


# --- aggregation rules, hand-computed -------------------------------------------------------------------

@pytest.mark.parametrize("rule, table, outputs, weights, expected", [
    ("mean", {"m": [0.5, 1.0, float("nan")]}, ["m"], None, [0.75]),
    ("mean", {"m": [0.5, 1.0, 0.0]}, ["m"], [[2, 0, 2]], [0.25]),  # (0.5+0.5+0+0)/4
    ("ratio", {"q__num": [2.0, 1.0], "q__den": [3.0, 1.0]}, ["q"], None, [0.75]),  # 3 points / 4 answered
    ("ratio", {"q__num": [2.0, 1.0], "q__den": [3.0, 1.0]}, ["q"], [[0, 3]], [1.0]),
    ("ratio", {"proxy_qa__num": [1.0], "proxy_qa__den": [2.0], "proxy_qa_image__num": [2.0],
               "proxy_qa_image__den": [2.0]}, ["proxy_qa_utility", "proxy_qa_gap"], None, [0.5, 0.5]),
])
def test_rules_hand_computed(rule, table, outputs, weights, expected):
    w = None if weights is None else np.asarray(weights, dtype=float)
    got = aggregate(rule, pd.DataFrame(table), outputs, w)
    assert [float(got[o][0]) for o in outputs] == pytest.approx(expected, abs=1e-15)


def test_bleu_rule_hand_computed():
    # candidate "a b c d" vs reference "a b c d e f": every n-gram matches, brevity penalty exp(1 - 6/4)
    stats = np.array([[4, 6, 4, 3, 2, 1, 4, 3, 2, 1]], dtype=float)
    bp = math.exp(1 - 6 / 4)
    for k in range(1, 5):
        assert bleu_from_totals(stats, k)[0] == pytest.approx(bp, rel=1e-8)
    # no match at all: BLEU-1 is pycocoevalcap's smoothed tiny/small ratio, not 0
    zero = np.array([[2, 2, 2, 1, 0, 0, 0, 0, 0, 0]], dtype=float)
    assert bleu_from_totals(zero, 1)[0] == pytest.approx(1e-15 / (2 + 1e-9))


def test_meteor_rule_perfect_match_has_no_fragmentation_penalty():
    # 3 content words matched exactly in one chunk, test = reference: METEOR 1.0 (chunks zeroed by the rule)
    stats = np.zeros((1, 23))
    stats[0, [0, 1]] = 3
    stats[0, [4, 5]] = 3
    stats[0, 20] = 1
    stats[0, [21, 22]] = 3
    assert meteor_from_totals(stats)[0] == 1.0  # a single segment: Java's "test = ref" case
    from capeval.aggregation import meteor_aggregable

    two = np.vstack([stats, stats])
    # summed naively, 2 chunks over 6 matches would cost 0.6 * (2/6)^0.2; Java's addStats skips perfect chunks
    assert meteor_from_totals(two.sum(axis=0))[0] == pytest.approx(1.0 - 0.6 * (1 / 3) ** 0.2)
    assert meteor_from_totals(meteor_aggregable(two).sum(axis=0))[0] == 1.0


def test_unknown_rule_is_an_error():
    with pytest.raises(CapevalError, match="unknown aggregation rule 'median'"):
        get_rule("median")


# --- per metric: (candidates, references, options, expected) ---------------------------------------------

COCO_TABLE = [
    # ROUGE-L: LCS 2 of "a b" in "a b c d": P=1, R=1/2, F = (1+1.2^2) P R / (R + 1.2^2 P)
    ("rouge_l", "rouge_l", ["a b"], [["a b c d"]], (1 + 1.44) * 0.5 / (0.5 + 1.44)),
    ("rouge_l", "rouge_l", ["a b c d"], [["x y", "a b c d"]], 1.0),
    ("bleu", "bleu_1", ["a b c d"], [["a b c d e f"]], math.exp(1 - 6 / 4)),
    ("bleu", "bleu_4", ["a b c d"], [["a b c d e f"]], math.exp(1 - 6 / 4)),
    # CIDEr-D on one image: every n-gram is in the only image's references, idf = log(1) - log(1) = 0
    ("cider", "cider", ["a b c"], [["a b c"]], 0.0),
]


@needs_java
@pytest.mark.java
@pytest.mark.parametrize("metric, output, cands, refs, expected", COCO_TABLE)
def test_coco_metric_table(metric, output, cands, refs, expected):
    r = capeval.evaluate({str(i): rs for i, rs in enumerate(refs)}, {"s": {str(i): c for i, c in enumerate(cands)}},
                         metrics=[metric])
    value = r.summary_dict()["captioners"]["s"][output]["mean"]
    assert value == pytest.approx(expected, rel=1e-8, abs=1e-12)


# --- the run directory and its consumers ------------------------------------------------------------------

def _thumb_subset(tmp_path: Path, n: int = 60, systems=("VinVL-large", "Up-Down")) -> tuple[Path, list[Path]]:
    refs, cands = {}, {s: {} for s in systems}
    with open(SHARED / "mscoco_references.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if len(refs) < n:
                refs[row["seg_id"]] = row["refs"]
    with open(SHARED / "mscoco_THumB-1.0.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["SYS"] in cands and row["seg_id"] in refs:
                cands[row["SYS"]][row["seg_id"]] = row["hyp"]
    ref_path = tmp_path / "refs.json"
    ref_path.write_text(json.dumps(refs))
    paths = []
    for s, c in cands.items():
        p = tmp_path / f"{s}.json"
        p.write_text(json.dumps(c))
        paths.append(p)
    return ref_path, paths


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def thumb_run(tmp_path_factory) -> Path:
    if java_problem() is not None:
        pytest.skip("needs Java")
    tmp = tmp_path_factory.mktemp("proto")
    refs, cands = _thumb_subset(tmp)
    out = tmp / "run"
    proc = _cli("score", "--refs", str(refs), *[a for p in cands for a in ("--cand", f"{p.stem}={p}")],
                "--metrics", "bleu,meteor,rouge_l,cider", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.java
def test_run_directory_stores_statistics_and_tokens(thumb_run):
    run = load_run(thumb_run)
    assert run.format_version == 2
    assert {p.stem for p in (thumb_run / "statistics").glob("*.parquet")} == {"bleu", "meteor", "rouge_l", "cider"}
    assert run.manifest["metrics"]["cider"]["aggregation"] == "cider-d"
    assert run.manifest["metrics"]["bleu"]["output_info"]["bleu_4"] == {
        "display": "BLEU-4", "scale": 100.0, "higher_is_better": True, "aggregation": "corpus"}
    # every corpus value is the metric's rule applied to the stored statistics, bit for bit
    for name, info in run.manifest["metrics"].items():
        table = run.statistics(name)
        for cap in run.captioners:
            sub = table[table["captioner"] == cap]
            got = aggregate(info["aggregation"], sub, info["outputs"])
            for out in info["outputs"]:
                stored = run.corpus[(run.corpus.captioner == cap) & (run.corpus.metric == out)]["value"].iloc[0]
                assert float(got[out][0]) == stored, (name, cap, out)
    toks = run.tokens
    assert set(toks["captioner"]) == {"", *run.captioners}
    assert len(toks[toks.captioner == ""]) == sum(len(v) for v in run.references.values())
    sig = run.manifest["signatures_json"]["cider"]
    assert sig["sigma"] == 6 and sig["v"] == "1" and sig["metric"] == "cider"


def _no_java_env(tmp_path: Path) -> dict:
    fake = tmp_path / "nojava"
    fake.mkdir(exist_ok=True)
    (fake / "java").write_text("#!/bin/sh\necho 'java was called' >&2\nexit 127\n")
    (fake / "java").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = f"{fake}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.java
@pytest.mark.slow
def test_consumers_need_no_java(thumb_run, tmp_path):
    with_java = tmp_path / "with"
    without = tmp_path / "without"
    shutil.copytree(thumb_run, with_java)
    shutil.copytree(thumb_run, without)
    env = _no_java_env(tmp_path)
    outputs = {}
    for label, run, e in (("java", with_java, None), ("nojava", without, env)):
        stats = _cli("stats", str(run), "--n-boot", "200", "--n-perm", "500", env=e)
        assert stats.returncode == 0, stats.stderr
        table = _cli("table", str(run), "--format", "markdown", "--spread", "ci", env=e)
        assert table.returncode == 0, table.stderr
        check = _cli("check", str(run), "--baseline", str(thumb_run), "-q", env=e)
        assert check.returncode == 0, check.stderr
        report = _cli("report", str(run), "-o", str(tmp_path / f"{label}.html"), env=e)
        assert report.returncode == 0, report.stderr
        for proc in (stats, table, check, report):
            assert "java was called" not in proc.stderr
        doc = json.loads((run / "stats.json").read_text())
        doc.pop("elapsed_seconds")
        outputs[label] = (doc, table.stdout)
    assert outputs["java"] == outputs["nojava"]


@pytest.mark.java
def test_stats_values_equal_the_runs_values(thumb_run, tmp_path):
    from capeval.stats import compute_stats

    doc = compute_stats(thumb_run, n_boot=100, n_perm=200)
    summary = json.loads((thumb_run / "summary.json").read_text())["captioners"]
    assert doc["warnings"] == []
    for metric, entry in doc["metrics"].items():
        for cap, c in entry["captioners"].items():
            assert c["value"] == summary[cap][metric]["mean"]


@pytest.mark.java
def test_legacy_run_is_read_and_upgraded(thumb_run, tmp_path, caplog):
    from capeval.stats import compute_stats

    legacy = tmp_path / "legacy"
    shutil.copytree(thumb_run, legacy)
    shutil.rmtree(legacy / "statistics")
    (legacy / "tokens.parquet").unlink()
    manifest = json.loads((legacy / "manifest.json").read_text())
    manifest["capeval_version"] = "0.1.0"
    del manifest["format_version"], manifest["signatures_json"]
    for info in manifest["metrics"].values():
        del info["aggregation"], info["output_info"]
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    new = compute_stats(thumb_run, n_boot=100, n_perm=200)
    old = compute_stats(legacy, n_boot=100, n_perm=200)  # statistics recomputed (with a notice)
    assert "re-scoring bleu" in caplog.text
    for metric in new["metrics"]:
        assert old["metrics"][metric]["captioners"] == new["metrics"][metric]["captioners"]


def test_malformed_run_files_are_one_line_errors(tmp_path):
    run = capeval.evaluate({"1": ["a dog runs"]}, {"s": {"1": "a dog"}}, metrics=["rouge_l"])
    out = run.write(tmp_path / "run")
    (out / "summary.json").write_text("[1, 2]")
    with pytest.raises(CapevalError, match=r"summary.json: expected a JSON object, got list"):
        load_run(out)
    (out / "summary.json").write_text(json.dumps({"captioners": {"s": {"rouge_l": {"mean": "x", "n": 1}}}}))
    with pytest.raises(CapevalError, match=r"summary.json: field captioners.s.rouge_l.mean"):
        load_run(out)
    for command in (["stats"], ["table"], ["report", "-o", str(tmp_path / "r.html")], ["check", "--baseline",
                                                                                        str(out)]):
        proc = _cli(command[0], str(out), *command[1:])
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (command, proc.stderr)


# --- options, signatures, comparability -------------------------------------------------------------------

def test_unknown_option_names_the_close_one(tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"1": ["a dog"]}))
    cand = tmp_path / "c.json"
    cand.write_text(json.dumps({"1": "a dog"}))
    proc = _cli("score", "--refs", str(refs), "--cand", f"c={cand}", "--metrics", "clair",
                "--option", "judge_temprature=0", "--out", str(tmp_path / "run"), "-q")
    assert proc.returncode == 2
    assert "unknown option 'judge_temprature'. Did you mean judge_temperature" in proc.stderr


def test_suite_and_metrics_together_is_an_error(tmp_path):
    proc = _cli("score", "--refs", "r.json", "--cand", "c.json", "--suite", "coco", "--metrics", "bleu",
                "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "--suite and --metrics" in proc.stderr


def _clair_reply(payload):
    return json.dumps({"score": 70, "reason": "ok"})


def test_judge_max_tokens_moves_the_signature_and_check_refuses(tmp_path):
    from capeval.judges.faultserver import FaultServer

    refs = {str(i): [f"a reference {i}"] for i in range(4)}
    cands = {"s": {str(i): f"a caption {i}" for i in range(4)}}
    with FaultServer(responder=_clair_reply) as server:
        runs = []
        for tokens in (64, 128):
            opts = {"judge_base_url": server.base_url, "judge_model": "fault", "judge_max_tokens": tokens,
                    "judge_cache": str(tmp_path / "c.sqlite")}
            r = capeval.evaluate(refs, cands, metrics=["clair"], options=opts)
            runs.append(r.write(tmp_path / f"run{tokens}"))
    a, b = (load_run(p).signatures["clair"] for p in runs)
    host = server.base_url.split("//")[1].split("/")[0].split(":")[0]
    assert a == (f"clair|judge:fault|prompt:clair-v2|temp:0|seeds:1|prompt_sha:"
                 f"{load_run(runs[0]).manifest['signatures_json']['clair']['prompt_sha']}|max_tokens:64|"
                 f"fmt:json_schema|host:{host}|v:2|capeval:{capeval.__version__}")
    assert a != b and a.replace("max_tokens:64", "max_tokens:128") == b
    proc = _cli("check", str(runs[1]), "--baseline", str(runs[0]), "-q")
    assert proc.returncode == 2
    assert "max_tokens (64 vs 128)" in proc.stderr


def test_signature_has_no_credentials():
    from capeval.metrics.judge import endpoint_host

    assert endpoint_host("https://user:sk-secret@example.org:8443/v1?key=sk-secret") == "example.org"


def test_background_metric_is_collected_after_the_other_metrics():
    """A metric scored in the background (METEOR) never holds up the metrics listed after it: the run collects
    it last, and still records every result in the metrics' order."""
    import threading

    from capeval.metrics.base import Metric, MetricStatistics

    others_done = threading.Event()

    class SlowBackground(Metric):
        name = "slow_background"
        outputs = ("slow_background",)
        background = True

        def statistics(self, batch, context, seed=0):
            if not others_done.wait(60):
                raise AssertionError("the run waited for the background metric before scoring the others")
            return MetricStatistics.of_values(list(batch.sample_ids), {"slow_background": np.ones(len(batch))})

    class Foreground(Metric):
        name = "foreground"
        outputs = ("foreground",)

        def statistics(self, batch, context, seed=0):
            others_done.set()
            return MetricStatistics.of_values(list(batch.sample_ids), {"foreground": np.zeros(len(batch))})

    res = capeval.evaluate({"a": ["x y"], "b": ["y z"]}, {"s": {"a": "x", "b": "z"}},
                           metrics=[SlowBackground(), Foreground()])
    assert list(dict.fromkeys(res.samples.metric)) == ["slow_background", "foreground"]
    assert list(res.metric_info) == ["slow_background", "foreground"]
    assert res.samples.groupby("metric")["value"].mean().to_dict() == {"foreground": 0.0, "slow_background": 1.0}
