"""``capeval check`` exit codes on real THumB runs: a degraded captioner (1), an unchanged rerun (0), runs that
can't be compared (2); the Markdown summary and JUnit XML it writes."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from capeval.java import java_problem

needs_java = pytest.mark.skipif(java_problem() is not None, reason=str(java_problem()))

SYSTEMS = ("Up-Down", "VinVL-large", "Human")
METRICS = ["bleu", "rouge_l", "cider"]


def _score(refs, captions, out):
    import capeval

    return capeval.evaluate(refs, captions, metrics=METRICS).write(out)


def _truncate_every_other(captions: dict[str, str]) -> dict[str, str]:
    """A broken captioner: every other caption cut to its first four words."""
    return {k: (" ".join(v.split()[:4]) if i % 2 == 0 else v) for i, (k, v) in enumerate(captions.items())}


@pytest.fixture(scope="module")
def runs(thumb, tmp_path_factory):
    """Baseline, unchanged rerun, degraded VinVL-large, slightly changed Human, and different references."""
    refs, systems = thumb
    root = tmp_path_factory.mktemp("check")
    captions = {s: systems[s] for s in SYSTEMS}
    out = {"base": _score(refs, captions, root / "base"), "rerun": _score(refs, captions, root / "rerun")}
    out["degraded"] = _score(refs, {**captions, "VinVL-large": _truncate_every_other(systems["VinVL-large"])},
                             root / "degraded")
    ids = list(refs)
    # a tiny change: two Human captions swapped between their images
    human = dict(systems["Human"])
    human[ids[0]], human[ids[1]] = human[ids[1]], human[ids[0]]
    out["tiny"] = _score(refs, {**captions, "Human": human}, root / "tiny")
    other_refs = {k: list(v) for k, v in refs.items()}
    other_refs[ids[0]] = other_refs[ids[0]][:-1]
    out["other_refs"] = _score(other_refs, captions, root / "other_refs")
    return out


def _main(args: list[str]) -> int:
    from capeval.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.java
@needs_java
def test_degraded_captioner_fails_the_gate(runs, tmp_path, monkeypatch):
    step = tmp_path / "step_summary.md"
    step.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    md, xml_path, js = tmp_path / "summary.md", tmp_path / "junit.xml", tmp_path / "check.json"
    code = _main(["check", str(runs["degraded"]), "--baseline", str(runs["base"]), "--tolerance", "cider=0.02",
                  "--summary-md", str(md), "--junit", str(xml_path), "--json", str(js), "--quiet"])
    assert code == 1
    report = json.loads(js.read_text())
    bad = {(r["captioner"], r["metric"]) for r in report["rows"] if r["status"] == "regression"}
    # every metric of the truncated captioner regresses; the untouched captioners do not
    assert bad == {("VinVL-large", m) for m in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider")}
    cider = next(r for r in report["rows"] if r["captioner"] == "VinVL-large" and r["metric"] == "cider")
    assert cider["drop"] > 0.02 and cider["p_holm"] < 0.05 and cider["tolerance"] == 0.02
    assert cider["ci_high"] < 0  # the whole CI of new - baseline is below zero
    untouched = [r for r in report["rows"] if r["captioner"] != "VinVL-large"]
    assert all(r["status"] == "ok" and r["diff"] == 0 for r in untouched)
    text = md.read_text()
    assert "❌ 6 regressions" in text and "| VinVL-large | cider |" in text
    assert step.read_text().startswith("previous step\n") and "❌ 6 regressions" in step.read_text()
    suite = ET.parse(xml_path).getroot().find("testsuite")
    assert suite.get("tests") == str(len(report["rows"])) and suite.get("failures") == "6"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert {(c.get("classname"), c.get("name")) for c in failed} == {
        ("capeval.check.VinVL-large", m) for m in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider")}


@pytest.mark.java
@needs_java
def test_tolerance_above_the_drop_passes(runs, tmp_path):
    js = tmp_path / "check.json"
    code = _main(["check", str(runs["degraded"]), "--baseline", str(runs["base"]), "--tolerance", "1.0",
                  "--json", str(js), "-q"])
    assert code == 0
    rows = json.loads(js.read_text())["rows"]
    # CIDEr drops by ~0.4 and BLEU-1 by ~0.2, both significant but below the tolerance of 1.0
    assert {r["status"] for r in rows if r["captioner"] == "VinVL-large"} == {"within-tolerance"}
    assert {r["status"] for r in rows if r["captioner"] != "VinVL-large"} == {"ok"}


@pytest.mark.java
@needs_java
def test_unchanged_rerun_passes(runs, tmp_path):
    md = tmp_path / "summary.md"
    js = tmp_path / "check.json"
    code = _main(["check", str(runs["rerun"]), "--baseline", str(runs["base"]), "--summary-md", str(md),
                  "--json", str(js), "-q"])
    assert code == 0
    rows = json.loads(js.read_text())["rows"]
    assert len(rows) == 3 * 6 and all(r["status"] == "ok" and r["diff"] == 0 for r in rows)
    assert "✅ no significant regression" in md.read_text()


@pytest.mark.java
@needs_java
def test_tiny_change_is_not_a_significant_regression(runs, tmp_path):
    js = tmp_path / "check.json"
    code = _main(["check", str(runs["tiny"]), "--baseline", str(runs["base"]), "--json", str(js), "-q"])
    assert code == 0
    human = {r["metric"]: r for r in json.loads(js.read_text())["rows"] if r["captioner"] == "Human"}
    assert human["cider"]["diff"] < 0  # two captions on the wrong images: CIDEr drops a little ...
    assert human["cider"]["p_holm"] > 0.05  # ... but two images out of 500 are no evidence of a regression
    assert human["cider"]["status"] == "drop-not-significant"


@pytest.mark.java
@needs_java
def test_different_references_are_incomparable(runs, tmp_path, capsys):
    md, xml_path = tmp_path / "summary.md", tmp_path / "junit.xml"
    code = _main(["check", str(runs["other_refs"]), "--baseline", str(runs["base"]), "--summary-md", str(md),
                  "--junit", str(xml_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "references differ" in err
    assert "not comparable" in md.read_text()
    assert ET.parse(xml_path).getroot().find("testsuite").get("errors") == "1"


@pytest.mark.java
@needs_java
def test_different_signature_is_incomparable(runs, tmp_path, capsys):
    changed = tmp_path / "changed"
    shutil.copytree(runs["rerun"], changed)
    for name in ("summary.json", "manifest.json"):
        doc = json.loads((changed / name).read_text())
        doc["signatures"]["cider"] = doc["signatures"]["cider"].replace("sigma:6", "sigma:5")
        (changed / name).write_text(json.dumps(doc))
    code = _main(["check", str(changed), "--baseline", str(runs["base"]), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "signature of cider differs" in err and "sigma:5" in err
    # gating only the other metrics is fine
    assert _main(["check", str(changed), "--baseline", str(runs["base"]), "--metrics", "bleu_4,rouge_l", "-q"]) == 0


@pytest.mark.java
@needs_java
def test_version_change_can_be_allowed(runs, tmp_path):
    changed = tmp_path / "newer"
    shutil.copytree(runs["rerun"], changed)
    for name in ("summary.json", "manifest.json"):
        doc = json.loads((changed / name).read_text())
        doc["signatures"] = {k: v.rsplit("|capeval:", 1)[0] + "|capeval:9.9" for k, v in doc["signatures"].items()}
        (changed / name).write_text(json.dumps(doc))
    # capeval's own version is not a score-moving field: comparable by default (the old flag still works)
    assert _main(["check", str(changed), "--baseline", str(runs["base"]), "-q"]) == 0
    assert _main(["check", str(changed), "--baseline", str(runs["base"]), "--allow-version-change", "-q"]) == 0
    assert _main(["check", str(changed), "--baseline", str(runs["base"]), "--strict-version", "-q"]) == 2


@pytest.mark.parametrize("extra, message", [
    (["--tolerance", "cider=abc"], "--tolerance must be"),
    (["--tolerance", "nosuchmetric=0.1"], "neither run"),
    (["--metrics", "spice"], "not in both runs"),
    (["--alpha", "2"], "alpha"),
])
@pytest.mark.java
@needs_java
def test_usage_errors_exit_2(runs, capsys, extra, message):
    assert _main(["check", str(runs["rerun"]), "--baseline", str(runs["base"]), "-q", *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_run_dir_exits_2(runs, tmp_path, capsys):
    assert _main(["check", str(tmp_path / "nope"), "--baseline", str(runs["base"])]) == 2
    assert "not a capeval run directory" in capsys.readouterr().err


def test_multi_seed_judge_regression(tmp_path):
    """A 3-seed judge metric (no Java): a captioner whose scores drop on every image fails, seed noise alone
    does not."""
    from test_stats import write_fake_run

    rng = np.random.default_rng(0)
    quality = {"A": rng.uniform(2, 4, (80, 1)), "B": rng.uniform(2, 4, (80, 1))}

    def judged(shift_b: float, seed: int) -> dict[str, np.ndarray]:
        noise = np.random.default_rng(seed)
        return {c: q + noise.normal(0, 0.3, (80, 3)) - (shift_b if c == "B" else 0.0) for c, q in quality.items()}

    base = write_fake_run(tmp_path / "base", judged(0.0, 1))
    again = write_fake_run(tmp_path / "again", judged(0.0, 2))  # same captions, new judge samples
    worse = write_fake_run(tmp_path / "worse", judged(0.5, 2))
    js = tmp_path / "check.json"
    assert _main(["check", str(again), "--baseline", str(base), "--json", str(js), "-q"]) == 0
    assert {r["status"] for r in json.loads(js.read_text())["rows"]} <= {"ok", "drop-not-significant"}
    assert _main(["check", str(worse), "--baseline", str(base), "--tolerance", "judge=0.2", "--json", str(js),
                  "-q"]) == 1
    rows = {r["captioner"]: r for r in json.loads(js.read_text())["rows"]}
    assert rows["B"]["status"] == "regression" and rows["B"]["drop"] == pytest.approx(0.5, abs=0.1)
    assert rows["A"]["status"] != "regression"
