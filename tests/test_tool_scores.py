"""lmms-eval and VLMEvalKit files built from THumB score exactly as the plain JSON inputs, and the tools' own
scores are reported beside capeval's with the reason for the difference (summary.json and the report)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from tool_files import write_lmms_samples, write_vlmeval

from capeval.io.literal import parse_caption_literal

CAPTIONER = "VinVL-large"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True, timeout=900)


def lmms_eval_way(refs: dict[str, list[str]], captions: dict[str, str]) -> dict[str, float]:
    """lmms-eval's coco_aggregation_result: int image ids, PTB tokenizer, pycocoevalcap scorers (0-1)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = {int(s): [{"caption": r} for r in refs[s]] for s in captions}
    res = {int(s): [{"caption": c}] for s, c in captions.items()}
    tok = PTBTokenizer()
    with contextlib.redirect_stdout(io.StringIO()):
        gts, res = tok.tokenize(gts), tok.tokenize(res)
        bleu, _ = Bleu(4).compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    return {"coco_Bleu_4": bleu[3], "coco_CIDEr": cider}


def vlmevalkit_way(xlsx) -> dict:
    """VLMEvalKit's ImageCaptionDataset.evaluate on its prediction file (row-position keys, raw captions, x100),
    with the answer literal parsed instead of eval'd."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    data = pd.read_excel(xlsx)
    ref = {str(i): [str(line["prediction"])] for i, line in enumerate(data.to_dict("records"))}
    gt = {str(i): parse_caption_literal(line["answer"]) for i, line in enumerate(data.to_dict("records"))}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gt, ref)
        rouge, _ = Rouge().compute_score(gt, ref)
        cider, _ = Cider().compute_score(gt, ref)
    return {"Bleu": [100 * b for b in bleu], "ROUGE_L": 100 * rouge, "CIDEr": 100 * cider}


@pytest.fixture(scope="module")
def thumb_files(tmp_path_factory, thumb):
    refs, systems = thumb
    captions = {sid: systems[CAPTIONER][sid] for sid in refs}
    d = tmp_path_factory.mktemp("tools")
    (d / "refs.json").write_text(json.dumps(refs))
    (d / "plain.json").write_text(json.dumps([{"image_id": s, "caption": c} for s, c in captions.items()]))
    lmms = write_lmms_samples(d / "lmms" / CAPTIONER, refs, captions, results=lmms_eval_way(refs, captions))
    xlsx = d / "vlmeval" / f"{CAPTIONER}_COCO_VAL.xlsx"
    write_vlmeval(xlsx, refs, captions)
    xlsx.with_name(f"{xlsx.stem}_score.json").write_text(json.dumps(vlmevalkit_way(xlsx)))
    return d, lmms, xlsx


@pytest.fixture(scope="module")
def runs(thumb_files, tmp_path_factory):
    d, lmms, xlsx = thumb_files
    out = tmp_path_factory.mktemp("runs")
    plain = run_cli("score", "--refs", str(d / "refs.json"), "--cand", f"plain={d / 'plain.json'}",
                    "--out", str(out / "plain"), "--quiet")
    assert plain.returncode == 0, plain.stderr
    tools = run_cli("score", "--cand", f"lmms={lmms}", "--cand", f"vlmeval=vlmeval:{xlsx}",
                    "--out", str(out / "tools"), "--quiet")  # no --refs: the references come from the files
    assert tools.returncode == 0, tools.stderr
    return out / "plain", out / "tools"


@pytest.mark.slow
@pytest.mark.java
def test_tool_files_score_exactly_as_plain_json(runs):
    plain_dir, tools_dir = runs
    plain = pd.read_parquet(plain_dir / "scores.parquet")
    tools = pd.read_parquet(tools_dir / "scores.parquet")
    assert len(plain) == 500 * 7
    want = plain.drop(columns="captioner").sort_values(["metric", "sample_id"]).reset_index(drop=True)
    for name in ("lmms", "vlmeval"):
        got = tools[tools.captioner == name].drop(columns="captioner").sort_values(["metric", "sample_id"])
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=True)
    corpus_plain = pd.read_parquet(plain_dir / "corpus.parquet").set_index("metric")["value"]
    corpus_tools = pd.read_parquet(tools_dir / "corpus.parquet")
    for name in ("lmms", "vlmeval"):
        got = corpus_tools[corpus_tools.captioner == name].set_index("metric")["value"]
        assert got.to_dict() == corpus_plain.to_dict()  # exactly, every metric
    assert corpus_plain["cider"] > 1.0  # VinVL-large is a strong captioner: a real score, not a zero
    summary = json.loads((tools_dir / "summary.json").read_text())
    sigs = json.loads((plain_dir / "summary.json").read_text())["signatures"]
    assert summary["signatures"] == sigs


@pytest.mark.slow
@pytest.mark.java
def test_tools_own_scores_beside_capevals(runs, thumb_files):
    _, tools_dir = runs
    _, _, xlsx = thumb_files
    summary = json.loads((tools_dir / "summary.json").read_text())
    ours = summary["captioners"]["lmms"]
    ext = summary["external"]
    lmms = ext["lmms"]
    assert lmms["tool"] == "lmms-eval" and lmms["scale"] == 1.0
    assert set(lmms["metrics"]) == {"bleu_4", "cider"}
    for key, m in lmms["metrics"].items():  # same pipeline: the numbers agree
        assert m["reason"] == "agree", m
        assert m["tool"] == pytest.approx(ours[key]["mean"], abs=1e-9) and m["explained"] is True
    vlm = ext["vlmeval"]
    assert vlm["tool"] == "VLMEvalKit" and vlm["scale"] == 100.0
    theirs = json.loads(xlsx.with_name(f"{xlsx.stem}_score.json").read_text())
    cider = vlm["metrics"]["cider"]
    assert cider["tool"] == theirs["CIDEr"] and cider["tool_name"] == "CIDEr"
    assert cider["capeval_on_tool_scale"] == pytest.approx(100 * ours["cider"]["mean"], rel=1e-12)
    assert cider["difference"] == pytest.approx(theirs["CIDEr"] - 100 * ours["cider"]["mean"], rel=1e-9)
    assert cider["difference"] < -1.0  # untokenised CIDEr-D is lower: "A dog." has the token "dog."
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"):
        m = vlm["metrics"][key]
        assert m["explained"] is True, (key, m)  # recomputed VLMEvalKit's way, capeval gets VLMEvalKit's number
        assert m["reason"].startswith("x100; no PTB tokenizer: case and punctuation stay attached"), m
    assert "single spaces" in vlm["metrics"]["rouge_l"]["reason"]
    assert vlm["metrics"]["meteor"]["tool"] is None
    assert vlm["metrics"]["meteor"]["reason"] == "VLMEvalKit computes no METEOR"


@pytest.mark.slow
@pytest.mark.java
def test_report_shows_the_tools_scores(runs, tmp_path):
    from capeval.report import build_report

    _, tools_dir = runs
    html = build_report([tools_dir], tmp_path / "r.html", stats=False).read_text()
    section = html[html.index("Other tools' scores"):html.index("Judge usage, failures and inputs</h3>")]
    assert section.count("<tr>") == 1 + 2 + 7  # header, lmms-eval's 2 metrics, VLMEvalKit's 6 + METEOR
    assert "VLMEvalKit" in section and "lmms-eval" in section and "agree" in section
    assert "(&#39;elephant.&#39; is not &#39;elephant&#39;)" in section  # escaped like every text


@pytest.mark.java
def test_unexplained_tool_score_says_so(thumb_files, tmp_path):
    d, _, xlsx = thumb_files
    wrong = tmp_path / xlsx.name
    wrong.write_bytes(xlsx.read_bytes())
    wrong.with_name(f"{wrong.stem}_score.json").write_text(json.dumps({"CIDEr": 5.0}))
    proc = run_cli("score", "--cand", f"vlmeval:{wrong}", "-m", "cider", "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "run" / "summary.json").read_text())["external"][CAPTIONER]["metrics"]["cider"]
    assert m["explained"] is False and "may come from other predictions" in m["reason"]


def test_refs_required_when_no_file_holds_them(thumb_files, tmp_path):
    d, lmms, _ = thumb_files
    proc = run_cli("score", "--cand", str(d / "plain.json"), "-m", "bleu", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "--refs is required" in proc.stderr


def test_tool_files_with_different_references_are_refused(thumb_files, tmp_path, thumb):
    refs, systems = thumb
    ids = list(refs)[:3]
    caps = {s: systems[CAPTIONER][s] for s in ids}
    other = dict(refs, **{ids[1]: ["something else entirely"]})
    a = write_lmms_samples(tmp_path / "a", refs, caps)
    b = write_vlmeval(tmp_path / "b_COCO_VAL.tsv", other, caps)
    proc = run_cli("score", "--cand", f"a={a}", "--cand", f"b={b}", "-m", "bleu", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert f"{b}: id '{ids[1]}': its references differ from those in {a}; pass --refs" in proc.stderr


@pytest.mark.java
def test_bundled_examples_score_and_explain_the_tools_numbers(tmp_path):
    """The README's commands on the examples in datasets/tool-outputs/."""
    from conftest import REPO

    ex = REPO / "datasets" / "tool-outputs"
    proc = run_cli("score", "--cand",
                   f"lmms=lmms:{ex}/lmms-eval/VinVL-large/20250101_120000_samples_coco2014_cap_val.jsonl",
                   "--cand", f"vlmeval=vlmeval:{ex}/vlmeval/VinVL-large_COCO_VAL.xlsx", "-m", "bleu,rouge_l,cider",
                   "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(summary["captioners"]) == ["lmms", "vlmeval"]
    ext = summary["external"]
    assert {m["reason"] for m in ext["lmms"]["metrics"].values()} == {"agree"}
    assert all(m["explained"] for m in ext["vlmeval"]["metrics"].values())
    hf = run_cli("score", "--refs", f"hf:{ex}/hf/references.parquet", "--cand", f"hf:{ex}/hf/VinVL-large.parquet",
                 "-m", "cider", "--out", str(tmp_path / "hf"), "--quiet")
    assert hf.returncode == 0, hf.stderr
    hf_cider = json.loads((tmp_path / "hf" / "summary.json").read_text())["captioners"]["VinVL-large"]["cider"]
    assert hf_cider["mean"] == summary["captioners"]["lmms"]["cider"]["mean"]
