"""``capeval board``: THumB captioners added one by one, refusals (references, CIDEr settings), tracks and
history, tiers identical to ``capeval stats``, battles (Bradley–Terry, Elo), exports (CSV, Every Eval Ever),
slugs, concurrent and killed ``board add``, a corrupt database."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capeval
from capeval.board import add_submission, init_board, open_board, remove_submission, track_stats
from capeval.board.battles import battles_from_rows, bradley_terry, elo, rank_battles, read_caparena
from capeval.board.db import check_integrity, db_path
from capeval.board.document import board_document
from capeval.board.export import eee_records, to_csv
from capeval.board.site import build_site
from capeval.board.slugs import slugify
from capeval.cli import main as cli_main
from capeval.errors import CapevalError
from capeval.report.synthetic import synthetic_results
from capeval.rundir import load_run
from capeval.stats import compute_stats

REPO = Path(__file__).resolve().parents[1]
N_IMAGES = 100
FAST = {"n_boot": 200, "n_perm": 500}
CAPTIONERS = ["Up-Down", "Unified-VLP", "VinVL-base", "VinVL-large", "Human"]


def synthetic(*args, **kwargs):
    """Synthetic results whose metrics declare the ``mean`` aggregation rule (as a per-sample metric's run does)."""
    results = synthetic_results(*args, **kwargs)
    return replace(results, metric_info={m: {**i, "aggregation": "mean"} for m, i in results.metric_info.items()})


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        cli_main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def thumb_subset(thumb, tmp_path_factory):
    """The first 100 THumB images: a references file, and one run scoring the 5 captioners with the COCO metrics."""
    refs, systems = thumb
    ids = list(refs)[:N_IMAGES]
    base = tmp_path_factory.mktemp("board-thumb")
    ref_file = base / "refs.json"
    ref_file.write_text(json.dumps({i: refs[i] for i in ids}))
    run = capeval.evaluate(str(ref_file), {s: {i: systems[s][i] for i in ids} for s in CAPTIONERS},
                           metrics=["bleu", "meteor", "rouge_l", "cider"]).write(base / "thumb5")
    return ref_file, run


@pytest.fixture(scope="module")
def thumb_board(thumb_subset, tmp_path_factory):
    """A board of the 5 THumB captioners, added one by one."""
    ref_file, run = thumb_subset
    board = tmp_path_factory.mktemp("board") / "coco"
    init_board(board, ref_file, metrics=["bleu", "meteor", "rouge_l", "cider"])
    for cap in CAPTIONERS:
        add_submission(board, run, captioners=[cap])
    return board


def test_five_thumb_captioners_added_one_by_one_with_the_cli(thumb_subset, tmp_path, capsys):
    ref_file, run = thumb_subset
    board = tmp_path / "board"
    code, out, err = cli(capsys, "board", "init", str(board), "--refs", str(ref_file), "--metrics", "bleu,cider")
    assert code == 0, err
    for k, cap in enumerate(CAPTIONERS):
        code, out, err = cli(capsys, "board", "add", str(board), str(run), "--captioner", cap)
        assert code == 0, err
        assert f"added {cap!r} v1 to track 'main'" in out
        conn = open_board(board)
        assert conn.execute("SELECT count(*) FROM submissions WHERE active = 1").fetchone()[0] == k + 1
        conn.close()
    summary = json.loads((run / "summary.json").read_text())["captioners"]
    code, out, err = cli(capsys, "board", "list", str(board), "--n-boot", "100", "--n-perm", "200")
    assert code == 0, err
    for cap in CAPTIONERS:
        assert f"{summary[cap]['cider']['mean']:.4f}" in out
    assert "meteor" not in out  # the board ranks the metrics it was created with
    code, out, err = cli(capsys, "board", "show", str(board), "VinVL-large", "--n-boot", "100", "--n-perm", "200")
    assert code == 0 and "cider" in out and "tier" in out and "history: v1 active" in out


def test_tiers_agree_with_capeval_stats(thumb_subset, thumb_board):
    """The board's CIs, paired tests and tiers are those of `capeval stats` on the same run."""
    _, run = thumb_subset
    expected = compute_stats(load_run(run), **FAST)
    conn = open_board(thumb_board)
    got = track_stats(conn, "main", thumb_board, FAST)
    conn.close()
    assert set(got["metrics"]) == set(expected["metrics"]) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor",
                                                                 "rouge_l", "cider"}
    for metric, entry in expected["metrics"].items():
        board_entry = got["metrics"][metric]
        assert board_entry["method"] == entry["method"]
        for cap, c in entry["captioners"].items():
            b = board_entry["captioners"][cap]
            assert b["rank"] == c["rank"], (metric, cap)
            assert b["rank_range"] == c["rank_range"]
            for key in ("value", "ci_low", "ci_high", "se"):
                assert b[key] == pytest.approx(c[key], abs=1e-12), (metric, cap, key)
        pairs = {(p["a"], p["b"]): p for p in entry["pairs"]}
        for p in board_entry["pairs"]:
            q = pairs[(p["a"], p["b"])]
            assert p["p_holm"] == pytest.approx(q["p_holm"], abs=1e-12) and p["significant"] == q["significant"]
    # some metric separates the captioners into more than one tier (the test can fail)
    assert any(len({c["rank"] for c in e["captioners"].values()}) > 1 for e in got["metrics"].values())


def test_stats_are_cached_until_the_track_changes(thumb_board):
    conn = open_board(thumb_board)
    track_stats(conn, "main", thumb_board, FAST)
    started = time.perf_counter()
    track_stats(conn, "main", thumb_board, FAST)
    assert time.perf_counter() - started < 1.0
    state = conn.execute("SELECT state FROM cache WHERE key = 'stats:main'").fetchone()[0]
    conn.close()
    assert re.fullmatch(r"[0-9a-f]{64}", state)


def _edit_run(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    for name in ("manifest.json", "summary.json"):
        doc = json.loads((dst / name).read_text())
        edit(doc)
        (dst / name).write_text(json.dumps(doc))
    return dst


def test_a_run_against_different_references_is_refused_naming_them(thumb, thumb_board, thumb_subset, tmp_path,
                                                                    capsys):
    refs, systems = thumb
    ids = list(refs)[:N_IMAGES]
    other = {i: list(refs[i]) for i in ids}
    other[ids[3]][0] = "A completely different reference caption."
    ref_file = tmp_path / "other_refs.json"
    ref_file.write_text(json.dumps(other))
    run = capeval.evaluate(str(ref_file), {"Up-Down-other": {i: systems["Up-Down"][i] for i in ids}},
                           metrics=["bleu", "meteor", "rouge_l", "cider"]).write(tmp_path / "sixth")
    code, out, err = cli(capsys, "board", "add", str(thumb_board), str(run))
    assert code == 2
    assert err.count("\n") == 1
    assert "references differ from track 'main'" in err
    assert f"1 ids with different reference texts (first {ids[3]!r})" in err
    assert "--track" in err
    conn = open_board(thumb_board)
    assert conn.execute("SELECT count(*) FROM submissions").fetchone()[0] == 5
    conn.close()


def test_a_run_with_different_cider_settings_is_refused_naming_the_field(thumb_board, thumb_subset, tmp_path, capsys):
    """CIDEr's settings are fixed in this capeval version, so the run's signature is edited as a run made with
    sigma 5 would record it."""
    _, run = thumb_subset
    thumb_board = shutil.copytree(thumb_board, tmp_path / "board")

    def sigma5(doc):
        doc["signatures"]["cider"] = doc["signatures"]["cider"].replace("sigma:6", "sigma:5")
        if "signatures_json" in doc:
            doc["signatures_json"]["cider"]["sigma"] = 5

    edited = _edit_run(run, tmp_path / "sigma5", sigma5)
    code, _, err = cli(capsys, "board", "add", str(thumb_board), str(edited), "--captioner", "Human", "--name", "H5")
    assert code == 2
    assert "cider: score-moving field(s) differ (board vs run): sigma (6 vs 5)" in err
    assert "bleu" not in err.split("refused by the board")[1]  # only what differs is named

    def newer_version(doc):  # the capeval version field does not move scores
        doc["signatures"] = {k: re.sub(r"capeval:[^|]*$", "capeval:9.9", v) for k, v in doc["signatures"].items()}
        for fields in doc.get("signatures_json", {}).values():
            fields["capeval"] = "9.9"

    same = _edit_run(run, tmp_path / "newer", newer_version)
    assert add_submission(thumb_board, same, captioners=["Human"], name="Human (newer capeval)")[0]["version"] == 1
    remove_submission(thumb_board, "Human (newer capeval)")


def test_track_history_and_versions(thumb_board, thumb_subset, tmp_path):
    _, run = thumb_subset
    board = tmp_path / "board"
    shutil.copytree(thumb_board, board)

    def sigma5(doc):
        doc["signatures"]["cider"] = doc["signatures"]["cider"].replace("sigma:6", "sigma:5")
        if "signatures_json" in doc:
            doc["signatures_json"]["cider"]["sigma"] = 5

    edited = _edit_run(run, tmp_path / "sigma5", sigma5)
    rec = add_submission(board, edited, captioners=["Human"], track="cider-sigma5")
    assert rec[0]["track"] == "cider-sigma5"
    # identical content again: refused; changed captions: a new version, the old one kept in the history
    with pytest.raises(CapevalError, match="identical captions and scores"):
        add_submission(board, run, captioners=["Up-Down"])
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    caps = pd.read_parquet(changed / "captions.parquet")
    caps.loc[caps.index[0], "caption"] = "a slightly different caption"
    caps.to_parquet(changed / "captions.parquet", index=False)
    rec = add_submission(board, changed, captioners=["Up-Down"], note="second try")
    assert rec[0]["version"] == 2 and rec[0]["replaced"]
    conn = open_board(board)
    doc = board_document(conn, board, FAST)
    conn.close()
    main, other = doc["tracks"]
    assert (main["name"], other["name"]) == ("main", "cider-sigma5")
    assert [s["name"] for s in other["submissions"]] == ["Human"]
    versions = [(v["version"], v["status"]) for v in main["all_versions"] if v["name"] == "Up-Down"]
    assert versions == [(1, "superseded"), (2, "active")]
    assert len(main["submissions"]) == 5
    adds = [h for h in main["history"] if h["kind"] == "add"]
    assert len(adds) == 6
    # the first submission took the top of every metric; VinVL-large took cider's top when it was added
    assert adds[0]["took_top"] == list(main["signatures"])
    summary = json.loads((run / "summary.json").read_text())["captioners"]
    best_before_large = max(CAPTIONERS[:3], key=lambda c: summary[c]["cider"]["mean"])
    large_took = summary["VinVL-large"]["cider"]["mean"] > summary[best_before_large]["cider"]["mean"]
    assert ("cider" in adds[3]["took_top"]) == large_took
    remove_submission(board, "Up-Down")
    conn = open_board(board)
    doc = board_document(conn, board, FAST)
    conn.close()
    assert len(doc["tracks"][0]["submissions"]) == 4
    assert doc["tracks"][0]["history"][-1]["kind"] == "remove"


def test_name_needs_one_captioner_and_unknown_names_are_named(thumb_board, thumb_subset):
    _, run = thumb_subset
    with pytest.raises(CapevalError, match="--name needs exactly one captioner"):
        add_submission(thumb_board, run, name="x")
    with pytest.raises(CapevalError, match="no captioner 'nope' in the run"):
        add_submission(thumb_board, run, captioners=["nope"])
    with pytest.raises(CapevalError, match="no submission 'nope' on track 'main'"):
        remove_submission(thumb_board, "nope")


# ---------------------------------------------------------------- exports


def test_csv_export_matches_the_document(thumb_board, tmp_path, capsys):
    code, out, err = cli(capsys, "board", "export", str(thumb_board), "--format", "csv", "--n-boot", "200",
                         "--n-perm", "500")
    assert code == 0, err
    frame = pd.read_csv(pd.io.common.StringIO(out))
    assert len(frame) == 5 * 7
    conn = open_board(thumb_board)
    doc = board_document(conn, thumb_board, FAST)
    conn.close()
    assert to_csv(doc) == out
    sub = next(s for s in doc["tracks"][0]["submissions"] if s["name"] == "VinVL-large")
    row = frame[(frame["name"] == "VinVL-large") & (frame["metric"] == "cider")].iloc[0]
    assert row["value"] == pytest.approx(sub["metrics"]["cider"]["value"], rel=1e-12)
    assert row["tier"] == sub["metrics"]["cider"]["rank"]
    assert row["signature"].startswith("cider|")


EEE_TOP = {"schema_version", "evaluation_id", "dedupe_identity", "evaluation_timestamp", "retrieved_timestamp",
           "source_metadata", "eval_library", "model_info", "evaluation_results", "detailed_evaluation_results"}
EEE_GENERATION_ARGS = {"temperature", "top_p", "top_k", "max_tokens", "execution_command", "reasoning",
                       "prompt_template", "agentic_eval_config", "eval_plan", "eval_limits", "sandbox",
                       "max_attempts", "incorrect_attempt_feedback"}


def check_eee(record: dict) -> None:
    """The constraints of Every Eval Ever's eval.schema.json 0.2.1 that a record can break."""
    assert set(record) <= EEE_TOP
    for key in ("schema_version", "evaluation_id", "retrieved_timestamp", "source_metadata", "model_info",
                "eval_library", "evaluation_results"):
        assert key in record, key
    assert record["retrieved_timestamp"].isdigit()
    meta = record["source_metadata"]
    assert meta["source_type"] in ("documentation", "evaluation_run")
    assert meta["evaluator_relationship"] in ("first_party", "third_party", "collaborative", "other")
    assert isinstance(meta["source_organization_name"], str)
    assert {"name", "version"} <= set(record["eval_library"])
    assert {"name", "id"} <= set(record["model_info"])
    for obj in (meta, record["eval_library"], record["model_info"]):
        assert all(isinstance(v, str) for v in obj.get("additional_details", {}).values())
    for result in record["evaluation_results"]:
        assert {"evaluation_name", "source_data", "metric_config", "score_details"} <= set(result)
        source = result["source_data"]
        assert source["source_type"] == "other" and "dataset_name" in source
        config = result["metric_config"]
        assert isinstance(config["lower_is_better"], bool)
        if config.get("score_type") == "continuous":
            assert config["min_score"] <= result["score_details"]["score"] <= config["max_score"]
        if "llm_scoring" in config:
            assert config["llm_scoring"]["judges"] and "input_prompt" in config["llm_scoring"]
            assert all("model_info" in j and {"name", "id"} <= set(j["model_info"])
                       for j in config["llm_scoring"]["judges"])
        details = result["score_details"]
        assert isinstance(details["score"], float)
        assert all(isinstance(v, str) for v in details.get("details", {}).values())
        unc = details.get("uncertainty", {})
        if "confidence_interval" in unc:
            ci = unc["confidence_interval"]
            assert ci["lower"] <= details["score"] <= ci["upper"] or ci["lower"] <= ci["upper"]
            assert 0 <= ci["confidence_level"] <= 1
        if "standard_error" in unc:
            assert "value" in unc["standard_error"]
        if "generation_config" in result:
            assert set(result["generation_config"].get("generation_args", {})) <= EEE_GENERATION_ARGS


def test_every_eval_ever_export(thumb_board, tmp_path, capsys):
    out = tmp_path / "eee"
    code, text, err = cli(capsys, "board", "export", str(thumb_board), "--format", "eee", "-o", str(out),
                          "--organization", "capeval tests", "--n-boot", "200", "--n-perm", "500")
    assert code == 0, err
    files = sorted(out.glob("*.json"))
    assert len(files) == 5
    records = [json.loads(f.read_text()) for f in files]
    for record in records:
        check_eee(record)
        assert record["source_metadata"]["source_organization_name"] == "capeval tests"
        names = [r["evaluation_name"] for r in record["evaluation_results"]]
        assert names == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]
        cider = record["evaluation_results"][-1]
        assert cider["metric_config"]["additional_details"]["signature"].startswith("cider|nrefs:4|n:4|sigma:6")
        ci = cider["score_details"]["uncertainty"]["confidence_interval"]
        assert ci["lower"] < cider["score_details"]["score"] < ci["upper"] and ci["confidence_level"] == 0.95
        assert cider["score_details"]["uncertainty"]["num_bootstrap_samples"] == 200


def test_every_eval_ever_judge_settings_and_generation_config(tmp_path):
    """A judge metric's signature becomes llm_scoring; a manifest's generation block becomes generation_config."""
    results = synthetic(30, 2, metrics=("clair",))
    results = replace(results, signatures={"clair": "clair|judge:smollm2-135m|prompt:clair-v1|temp:0.7|seeds:1|"
                                                    "capeval:0.1.0"})
    run = results.write(tmp_path / "run", command=["synthetic"])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["generation"] = {"temperature": 0.0, "max_tokens": 64, "model": "my-captioner", "beams": 5}
    (run / "manifest.json").write_text(json.dumps(manifest))
    refs = tmp_path / "refs.json"
    refs.write_text((run / "references.json").read_text())
    board = tmp_path / "board"
    init_board(board, refs)
    add_submission(board, run)
    conn = open_board(board)
    doc = board_document(conn, board, FAST)
    manifests = {(r["track"], r["name"]): json.loads(r["manifest"])
                 for r in conn.execute("SELECT track, name, manifest FROM submissions")}
    conn.close()
    records = eee_records(doc, manifests)
    assert len(records) == 2
    for record in records:
        check_eee(record)
        result = record["evaluation_results"][0]
        llm = result["metric_config"]["llm_scoring"]
        assert llm["judges"][0]["model_info"]["id"] == "smollm2-135m"
        assert llm["judges"][0]["temperature"] == 0.7 and llm["input_prompt"] == "clair-v1"
        assert result["generation_config"]["generation_args"] == {"temperature": 0.0, "max_tokens": 64}
        assert result["generation_config"]["additional_details"] == {"model": "my-captioner", "beams": "5"}


# ---------------------------------------------------------------- battles


def caparena_file(path: Path, strengths: dict[str, float], n: int, seed: int = 0) -> Path:
    """A CapArena-Auto style battle file drawn from Bradley–Terry strengths (10% ties), plus unreadable rows."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    items = []
    for k in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p = 1 / (1 + np.exp(strengths[b] - strengths[a]))
        u = rng.random()
        judge = "Tie" if u < 0.1 else ("Caption 1 is better." if u < 0.1 + 0.9 * p else "Caption 2 is better.")
        items.append({"img": f"{k}.jpg", "source1": a, "caption1": "...", "source2": b, "caption2": "...",
                      "judge": judge, "ref_model": "GPT-4o-0806"})
    items.append({"img": "x.jpg", "source1": names[0], "source2": names[1], "judge": "I cannot decide"})
    items.append({"img": "y.jpg", "source1": names[0], "source2": names[1]})
    path.write_text(json.dumps(items))
    return path


def test_bradley_terry_is_the_maximum_likelihood_estimate():
    rng = np.random.default_rng(3)
    wins = rng.integers(1, 30, size=(1, 5, 5)).astype(float)
    wins[0, np.arange(5), np.arange(5)] = 0
    r = bradley_terry(wins)[0]
    p = 10 ** (r / 400)
    games = wins[0] + wins[0].T
    expected = (games * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    # the MLE's score equations, up to the tiny pseudo-count that keeps estimates finite
    assert np.allclose(expected, wins[0].sum(axis=1), atol=0.02)
    assert r.mean() == pytest.approx(1000)


def test_elo_matches_capareana_update_by_hand():
    battles = battles_from_rows([("a", "b", 1.0, None), ("b", "c", 0.5, None), ("c", "a", 0.0, None)])
    ra = rb = rc = 1000.0
    ea = 1 / (1 + 10 ** ((rb - ra) / 400)); ra, rb = ra + 4 * (1 - ea), rb - 4 * (1 - ea)  # noqa: E702
    eb = 1 / (1 + 10 ** ((rc - rb) / 400)); rb, rc = rb + 4 * (0.5 - eb), rc - 4 * (0.5 - eb)  # noqa: E702
    ec = 1 / (1 + 10 ** ((ra - rc) / 400)); rc, ra = rc + 4 * (0 - ec), ra - 4 * (0 - ec)  # noqa: E702
    assert elo(battles).tolist() == pytest.approx([ra, rb, rc], abs=1e-12)


@pytest.mark.parametrize("method", ["bt", "elo"])
def test_caparena_battles_ranked_with_cis(tmp_path, method):
    strengths = {"GPT-4o": 1.2, "Qwen2-VL-72B": 0.6, "LLaVA-1.5-7B": -0.2, "<i>weak</i>": -1.2}
    path = caparena_file(tmp_path / "battles.json", strengths, 3000)
    battles = read_caparena(path)
    assert battles.skipped == 2 and battles.skipped_reasons == {"unreadable verdict": 1, "no verdict": 1}
    doc = rank_battles(battles, method=method, n_boot=200 if method == "bt" else 60)
    assert [m["model"] for m in doc["models"]] == list(strengths)
    assert [m["rank"] for m in doc["models"]] == [1, 2, 3, 4]  # strengths far apart: CIs separate
    for m in doc["models"]:
        assert m["ci_low"] < m["rating"] < m["ci_high"]
        assert m["wins"] + m["ties"] + m["losses"] == m["battles"]


def test_battles_on_the_board_and_bad_files(thumb_board, tmp_path, capsys):
    board = tmp_path / "board"
    shutil.copytree(thumb_board, board)
    path = caparena_file(tmp_path / "caparena_auto.json", {"A": 0.5, "B": 0.0, "C": -0.5}, 600)
    code, out, err = cli(capsys, "board", "battles", str(board), str(path), "--method", "bt", "--judge", "gpt-4o")
    assert code == 0, err
    assert "imported 600 battles between 3 models as 'caparena_auto' (2 without a readable verdict" in out
    conn = open_board(board)
    doc = board_document(conn, board, FAST)
    conn.close()
    assert doc["battles"][0]["method"] == "bradley-terry" and len(doc["battles"][0]["models"]) == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"source1": "A", "judge": "Tie"}]))
    code, _, err = cli(capsys, "board", "battles", str(board), str(bad))
    assert code == 2 and "bad.json: battle 0: needs string fields source1 and source2" in err


# ---------------------------------------------------------------- slugs, safety


def test_slugs_are_safe_and_distinct():
    names = ["../../etc/passwd", "a/b", "A/B", "a-b", "CON", "名前", "名字", "", "x" * 300, "foo", "Foo", "foo!"]
    slugs = [slugify("main", n, "1") for n in names]
    assert len(set(slugs)) == len(slugs)
    for s in slugs:
        assert re.fullmatch(r"[a-z0-9-]+", s) and len(s) <= 51


def synthetic_run(path: Path, n_images: int, n_captioners: int, seed: int = 0) -> Path:
    return synthetic(n_images, n_captioners, seed=seed).write(path, command=["synthetic"])


@pytest.fixture()
def synthetic_board(tmp_path):
    run = synthetic_run(tmp_path / "run", 3000, 6)
    refs = tmp_path / "refs.json"
    refs.write_text((run / "references.json").read_text())
    board = tmp_path / "board"
    init_board(board, refs)
    return board, run


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _consistent(board: Path) -> list[str]:
    conn = open_board(board)
    try:
        return check_integrity(conn, db_path(board))
    finally:
        conn.close()


def test_two_adds_at_once_both_land(synthetic_board):
    board, run = synthetic_board
    procs = [subprocess.Popen([sys.executable, "-m", "capeval", "board", "add", str(board), str(run),
                               "--captioner", cap], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for cap in ("captioner_00", "captioner_01", "captioner_00")]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes.count(0) == 2, outs  # the same captioner twice: the second one is refused as identical
    assert any("identical captions and scores" in err for _, err in outs)
    assert _consistent(board) == []
    conn = open_board(board)
    rows = conn.execute("SELECT name, version FROM submissions ORDER BY name").fetchall()
    conn.close()
    assert [tuple(r) for r in rows] == [("captioner_00", 1), ("captioner_01", 1)]


KILL_BEFORE_COMMIT = """
import os, signal, sys
import capeval.board.submit as submit
calls = []
real = submit._leaders
def leaders(*args):
    calls.append(1)
    if len(calls) == 2:  # after every row of the submission is written, before COMMIT
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args)
submit._leaders = leaders
submit.add_submission(sys.argv[1], sys.argv[2], captioners=[sys.argv[3]])
"""


def test_a_killed_add_leaves_the_board_as_it_was(synthetic_board):
    board, run = synthetic_board
    add_submission(board, run, captioners=["captioner_00"])
    proc = subprocess.run([sys.executable, "-c", KILL_BEFORE_COMMIT, str(board), str(run), "captioner_01"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _consistent(board) == []
    conn = open_board(board)
    assert [r[0] for r in conn.execute("SELECT name FROM submissions")] == ["captioner_00"]
    assert conn.execute("SELECT count(DISTINCT sub) FROM scores").fetchone()[0] == 1
    conn.close()
    # killed at arbitrary moments: never half a submission
    outcomes = []
    for k, delay in enumerate((0.8, 1.6, 2.4, 3.2)):
        proc = subprocess.Popen([sys.executable, "-m", "capeval", "board", "add", str(board), str(run),
                                 "--captioner", f"captioner_0{k + 2}"], env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        outcomes.append(proc.wait(timeout=60))
        assert _consistent(board) == []
    # the board still takes submissions
    add_submission(board, run, captioners=["captioner_01"])
    assert _consistent(board) == []
    conn = open_board(board)
    names = {r[0] for r in conn.execute("SELECT name FROM submissions")}
    conn.close()
    assert {"captioner_00", "captioner_01"} <= names


def test_a_corrupt_database_is_a_one_line_error(synthetic_board, capsys):
    board, run = synthetic_board
    add_submission(board, run, captioners=["captioner_00"])
    path = db_path(board)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    good = path.read_bytes()
    for label, data in (("garbage", b"this is not a database" * 100), ("truncated", good[: len(good) // 3])):
        for f in board.glob("board.sqlite*"):
            f.unlink()
        path.write_bytes(data)
        for command in (["board", "list", str(board)], ["board", "add", str(board), str(run)],
                        ["board", "build", str(board), "-o", str(board.parent / "site")]):
            code, out, err = cli(capsys, *command)
            assert code == 2, (label, command, err)
            assert err.count("\n") == 1 and err.startswith("capeval: error: "), (label, command, err)
            assert "board.sqlite" in err and "Traceback" not in err


def test_missing_board_and_existing_board(tmp_path, capsys):
    code, _, err = cli(capsys, "board", "list", str(tmp_path / "nope"))
    assert code == 2 and "not a capeval board" in err
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"1": ["a cat"]}))
    assert cli(capsys, "board", "init", str(tmp_path / "b"), "--refs", str(refs))[0] == 0
    code, _, err = cli(capsys, "board", "init", str(tmp_path / "b"), "--refs", str(refs))
    assert code == 2 and "a board already exists here" in err


def test_every_board_command_has_help_with_an_example(capsys):
    for command in ("init", "add", "remove", "list", "show", "build", "export", "battles"):
        code, out, _ = cli(capsys, "board", command, "--help")
        assert code == 0 and "Example:" in out, command


def test_site_files_are_named_by_slug(thumb_board, tmp_path):
    site = build_site(thumb_board, tmp_path / "site", params=FAST)
    pages = sorted(p.name for p in (site / "s").iterdir())
    assert len(pages) == 5 and all(re.fullmatch(r"[a-z0-9-]+\.html", p) for p in pages)
    doc = json.loads((site / "board.json").read_text())
    assert "path" not in doc["references"]  # no local paths published
    assert all("run_path" not in s for s in doc["tracks"][0]["submissions"])
    # rebuilding replaces the site in place
    (site / "stale.txt").write_text("x")
    build_site(thumb_board, site, params=FAST)
    assert not (site / "stale.txt").exists()


def test_judge_cost_and_caption_length_columns(tmp_path):
    """Cost is the run's judge cost when the run has one captioner, unknown (None) when several share it."""
    results = synthetic(20, 2, metrics=("clair",))
    one = replace(results, dataset=replace(results.dataset, candidates={
        "captioner_00": results.dataset.candidates["captioner_00"]}),
        samples=results.samples[results.samples["captioner"] == "captioner_00"],
        corpus=results.corpus[results.corpus["captioner"] == "captioner_00"],
        usage={"clair": {"judge_requests": 20.0, "cost_usd": 0.25}})
    solo = one.write(tmp_path / "solo", command=["synthetic"])
    shared = replace(results, usage={"clair": {"cost_usd": 0.5}}).write(tmp_path / "shared", command=["synthetic"])
    refs = tmp_path / "refs.json"
    refs.write_text((solo / "references.json").read_text())
    board = tmp_path / "board"
    init_board(board, refs)
    add_submission(board, solo, name="solo")
    add_submission(board, shared, captioners=["captioner_01"])
    conn = open_board(board)
    doc = board_document(conn, board, FAST)
    conn.close()
    subs = {s["name"]: s for s in doc["tracks"][0]["submissions"]}
    assert subs["solo"]["cost_usd"] == 0.25 and subs["captioner_01"]["cost_usd"] is None
    words = [len(c.split()) for c in results.dataset.candidates["captioner_00"].values()]
    assert subs["solo"]["mean_length"] == pytest.approx(np.mean(words))
