"""BERTScore: parity with bert_score.score on THumB (offline MiniLM), options, blanks, fallback, CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from importlib.metadata import version
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("bert_score")

import bert_score  # noqa: E402

import capeval  # noqa: E402
from capeval.errors import CapevalError, MetricUnavailable  # noqa: E402
from capeval.metrics import bertscore_model  # noqa: E402
from capeval.metrics.base import Batch  # noqa: E402
from capeval.metrics.bertscore import BERTScore, load_baseline, shipped_baseline  # noqa: E402
from capeval.metrics.bertscore_model import ModelSpec, resolve_model  # noqa: E402
from capeval.models import minilm_path, offline  # noqa: E402

pytestmark = pytest.mark.slow

N_IMAGES = 50  # x 4 captioners = 200 candidates, 800 pairs: the CI parity subset (the benchmark does all 2,500)
SYSTEMS = ["Up-Down", "Unified-VLP", "VinVL-base", "Human"]
TOL = 1e-6
KEYS = {"bertscore": 2, "bertscore_p": 0, "bertscore_r": 1}  # output -> column of bert_score's (P, R, F)


def tail_signature() -> str:
    return (f"impl:bert_score-{version('bert-score')}|transformers:{version('transformers')}"
            f"|v:1|capeval:{capeval.__version__}")


@pytest.fixture(scope="module")
def minilm() -> str:
    return str(minilm_path())


@pytest.fixture(scope="module")
def subset(thumb):
    refs, systems = thumb
    ids = list(refs)[:N_IMAGES]
    return {i: refs[i] for i in ids}, {s: {i: systems[s][i] for i in ids} for s in SYSTEMS}


@pytest.fixture(scope="module")
def direct(subset, minilm):
    """bert_score.score called directly on all 200 candidates (list of 4 references each)."""
    refs, systems = subset
    order = [(s, i) for s in SYSTEMS for i in refs]
    p, r, f = bert_score.score([systems[s][i] for s, i in order], [refs[i] for _, i in order],
                               model_type=minilm, num_layers=6)
    table = np.stack([p.numpy(), r.numpy(), f.numpy()], axis=1).astype(float)
    return {key: dict(zip(order, table[:, col], strict=True)) for key, col in KEYS.items()}


@pytest.fixture(scope="module")
def evaluated(subset, minilm):
    refs, systems = subset
    return capeval.evaluate(refs, systems, metrics=["bertscore"],
                            options={"bertscore_model": minilm, "bertscore_layer": 6})


@pytest.fixture
def hub_down(monkeypatch, tmp_path):
    """No hub and an empty Hugging Face cache, whatever the machine has."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(offline, "_reachable", None)


def test_parity_with_bert_score_on_thumb(evaluated, direct, subset):
    refs, _ = subset
    samples = evaluated.samples.set_index(["metric", "captioner", "sample_id"])["value"]
    assert len(evaluated.samples) == 3 * len(SYSTEMS) * len(refs)
    worst = 0.0
    for key, expected in direct.items():
        for (cap, sid), value in expected.items():
            diff = abs(samples[(key, cap, sid)] - value)
            worst = max(worst, diff)
            assert diff <= TOL, (key, cap, sid, samples[(key, cap, sid)], value)
    print(f"max |capeval - bert_score| over {len(SYSTEMS) * len(refs)} candidates: {worst:.2e}")
    corpus = evaluated.corpus.set_index(["captioner", "metric"])["value"]
    for cap in SYSTEMS:
        for key in KEYS:
            mean = np.mean([direct[key][(cap, i)] for i in refs])
            assert abs(corpus[(cap, key)] - mean) <= TOL
    # sanity: real scores, F1 between P and R's min and max, not all equal
    f1 = evaluated.samples[evaluated.samples.metric == "bertscore"]["value"]
    assert 0.3 < f1.mean() < 1.0 and f1.std() > 0.01


def test_signature_and_summary(evaluated):
    sig = evaluated.signatures
    assert sig["bertscore"] == ("bertscore|model:all-MiniLM-L6-v2_L6|idf:no|rescale:no|fallback:no|nrefs:4|"
                                + tail_signature())
    assert sig["bertscore_p"].startswith("bertscore_p|model:all-MiniLM-L6-v2_L6|")
    summary = evaluated.summary_dict()
    for cap in SYSTEMS:
        assert list(summary["captioners"][cap]) == ["bertscore", "bertscore_p", "bertscore_r"]
        assert summary["captioners"][cap]["bertscore"]["n"] == N_IMAGES
    assert summary["usage"]["bertscore"] == {"blank_candidates": 0.0, "blank_references": 0.0}


def test_idf_and_rescale_parity(subset, minilm, tmp_path):
    """idf from one captioner's references and a custom baseline, exactly as bert_score.score does them."""
    refs, systems = subset
    ids = list(refs)[:20]
    cands = [systems["VinVL-base"][i] for i in ids]
    baseline = tmp_path / "minilm-test-baseline.tsv"
    rows = [f"{layer},{0.30 + 0.01 * layer},{0.31 + 0.01 * layer},{0.305 + 0.01 * layer}" for layer in range(7)]
    baseline.write_text("LAYER,P,R,F\n" + "\n".join(rows) + "\n")
    p, r, f = bert_score.score(cands, [refs[i] for i in ids], model_type=minilm, num_layers=6, idf=True,
                               rescale_with_baseline=True, lang="en", baseline_path=str(baseline))
    result = capeval.evaluate({i: refs[i] for i in ids}, {"vinvl": dict(zip(ids, cands, strict=True))},
                              metrics=["bertscore"],
                              options={"bertscore_model": minilm, "bertscore_layer": 6, "bertscore_idf": True,
                                       "bertscore_baseline": str(baseline)})
    got = result.samples.set_index(["metric", "sample_id"])["value"]
    for key, expected in (("bertscore", f), ("bertscore_p", p), ("bertscore_r", r)):
        mine = np.array([got[(key, i)] for i in ids])
        assert np.max(np.abs(mine - expected.numpy())) <= TOL, key
    assert "|idf:yes|rescale:custom|" in result.signatures["bertscore"]


def test_each_sentence_encoded_once(subset, minilm):
    """Across captioners and metric instances of one run, every unique sentence goes through the model once."""
    refs, systems = subset
    ids = list(refs)[:6]
    context = SimpleNamespace(shared={}, dataset=None)
    rows = []
    metric = BERTScore(model=minilm)
    metric.setup(context)
    encoder = metric._encoder
    hook = encoder.model.register_forward_hook(lambda mod, args, kwargs_out: rows.append(args[0].shape[0]))
    try:
        for cap in SYSTEMS:
            batch = Batch(cap, ids, [systems[cap][i] for i in ids], [refs[i] for i in ids])
            metric.score(batch, context)
        BERTScore(model=minilm, idf=True).score(
            Batch("Human", ids, [systems["Human"][i] for i in ids], [refs[i] for i in ids]), context)
    finally:
        hook.remove()
    unique = {s for i in ids for s in refs[i]} | {systems[c][i] for c in SYSTEMS for i in ids}
    assert sum(rows) == len(unique) == encoder.encoded
    assert len(context.shared) == 1  # one model for the whole run


def test_blank_sentences_score_zero_and_keep_the_batch(subset, minilm, caplog):
    refs, systems = subset
    ids = list(refs)[:6]
    cands = [systems["Up-Down"][i] for i in ids]
    cands[1] = ""
    cands[4] = " \t "
    cands[5] = "\U0001f984 \U0001f984"  # unknown characters: [CLS] [UNK] [UNK] [SEP] is not blank
    references = [list(refs[i]) for i in ids]
    references[2] = ["", *references[2][:3]]  # a blank reference among real ones
    references[3] = ["   ", ""]  # only blank references
    metric = BERTScore(model=minilm)
    with caplog.at_level(logging.WARNING, logger="capeval"):
        out = metric.score(Batch("sys", ids, cands, references), SimpleNamespace(shared={}, dataset=None))
    assert out.usage == {"blank_candidates": 2.0, "blank_references": 3.0}
    assert "2 blank candidate(s)" in caplog.text and "3 blank reference(s)" in caplog.text
    for key in KEYS:
        values = out.per_sample[key]
        assert np.all(np.isfinite(values))
        assert values[1] == 0 and values[4] == 0 and values[3] == 0
    keep = [0, 2, 5]
    p, r, f = bert_score.score([cands[k] for k in keep], [[x for x in references[k] if x.strip()] for k in keep],
                               model_type=minilm, num_layers=6)
    for key, expected in (("bertscore", f), ("bertscore_p", p), ("bertscore_r", r)):
        assert np.max(np.abs(out.per_sample[key][keep] - expected.numpy())) <= TOL
    assert out.corpus["bertscore"] == pytest.approx(float(np.mean(out.per_sample["bertscore"])))


def test_blank_candidate_through_evaluate(subset, minilm):
    refs, systems = subset
    ids = list(refs)[:5]
    cands = {i: systems["Human"][i] for i in ids}
    cands[ids[0]] = "   "
    result = capeval.evaluate({i: refs[i] for i in ids}, {"h": cands}, metrics=["bertscore"],
                              options={"bertscore_model": minilm})
    got = result.samples.set_index(["metric", "sample_id"])["value"]
    assert got[("bertscore", ids[0])] == 0.0 and got[("bertscore", ids[1])] > 0.5
    assert result.summary_dict()["usage"]["bertscore"]["blank_candidates"] == 1.0


def test_fallback_when_offline_is_fast_and_visible(hub_down, caplog):
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="capeval"):
        spec = resolve_model(None, None)
    assert time.monotonic() - start < 5
    assert spec == ModelSpec(str(minilm_path()), "all-MiniLM-L6-v2", 6, fallback=True)
    assert "falling back" in caplog.text and "roberta-large" in caplog.text
    sig = BERTScore().signatures([["a", "b"]])["bertscore"]
    assert sig == "bertscore|model:all-MiniLM-L6-v2_L6|idf:no|rescale:no|fallback:yes|nrefs:2|" + tail_signature()


def test_fallback_when_the_hub_does_not_answer(monkeypatch, tmp_path):
    """No offline flag, but the hub's address refuses connections: the probe decides within seconds."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(offline, "_reachable", None)
    start = time.monotonic()
    spec = resolve_model(None, 17)
    assert time.monotonic() - start < 8
    assert spec.fallback and spec.layer == 6


def test_rescale_without_a_baseline_says_so(hub_down, caplog):
    metric = BERTScore(rescale=True)
    with caplog.at_level(logging.WARNING, logger="capeval"):
        sig = metric.signatures([["a"]])["bertscore"]
    assert "|rescale:no|fallback:yes|" in sig
    assert "no rescale baseline exists for all-MiniLM-L6-v2" in caplog.text


def test_roberta_large_baseline_is_bert_scores_file():
    spec = ModelSpec("roberta-large", "roberta-large", 17)
    path = shipped_baseline(spec)
    assert path is not None and path.name == "roberta-large.tsv"
    row = pd.read_csv(path).iloc[17].to_numpy()[1:]
    assert np.allclose(load_baseline(path, 17).numpy(), row.astype(np.float32))
    assert shipped_baseline(ModelSpec("x", "all-MiniLM-L6-v2", 6)) is None


def test_named_model_that_cannot_load_fails_fast(hub_down):
    start = time.monotonic()
    with pytest.raises(MetricUnavailable, match="not-a-real/model.*hub is unreachable"):
        resolve_model("not-a-real/model", None)
    assert time.monotonic() - start < 5


def test_minilm_hub_id_maps_to_packaged_weights_offline(hub_down):
    spec = resolve_model("sentence-transformers/all-MiniLM-L6-v2", None)
    assert spec.source == str(minilm_path()) and spec.label == "all-MiniLM-L6-v2" and not spec.fallback


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"bertscore_idf": "maybe"}, "bertscore_idf='maybe': expected yes/no"),
        ({"bertscore_layer": "top"}, "bertscore_layer='top': expected an integer"),
        ({"bertscore_idff": True}, "unknown bertscore option"),
    ],
)
def test_bad_options(options, problem):
    with pytest.raises(CapevalError, match=problem):
        BERTScore.from_options(options)


def test_option_parsing():
    metric = BERTScore.from_options({"bertscore_idf": 1, "bertscore_rescale": "no", "bertscore_layer": "5",
                                     "bertscore_model": "m", "judge_model": "ignored"})
    assert (metric.idf, metric.rescale, metric.layer, metric.model) == (True, False, 5, "m")


def test_layer_out_of_range(minilm):
    with pytest.raises(MetricUnavailable, match="layer 9 is out of range for all-MiniLM-L6-v2"):
        resolve_model(minilm, 9)
    assert resolve_model(minilm, 3).layer == 3


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "capeval", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_metrics_command_lists_bertscore_available():
    proc = run_cli("metrics", "--json")
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout) if r["name"] == "bertscore")
    assert row["available"] is True and row["reason"] == ""
    assert row["outputs"] == ["bertscore", "bertscore_p", "bertscore_r"]


def test_cli_default_model_falls_back_offline(subset, direct, tmp_path):
    refs, systems = subset
    ids = list(refs)[:6]
    (tmp_path / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    for cap in ("Up-Down", "Human"):
        (tmp_path / f"{cap}.json").write_text(json.dumps([{"image_id": i, "caption": systems[cap][i]}
                                                          for i in ids]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    out = tmp_path / "run"
    start = time.monotonic()
    proc = run_cli("score", "--refs", str(tmp_path / "refs.json"), "--cand", f"updown={tmp_path / 'Up-Down.json'}",
                   "--cand", f"human={tmp_path / 'Human.json'}", "--metrics", "bertscore", "--out", str(out),
                   "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 120
    assert "falling back to the packaged all-MiniLM-L6-v2" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "|fallback:yes|" in summary["signatures"]["bertscore"]
    assert set(summary["captioners"]["updown"]) == {"bertscore", "bertscore_p", "bertscore_r"}
    scores = pd.read_parquet(out / "scores.parquet").set_index(["metric", "captioner", "sample_id"])["value"]
    for key in KEYS:
        for cap, name in (("Up-Down", "updown"), ("Human", "human")):
            for i in ids:
                assert abs(scores[(key, name, i)] - direct[key][(cap, i)]) <= TOL


def test_cli_model_layer_and_idf_options(subset, minilm, tmp_path):
    refs, systems = subset
    ids = list(refs)[:6]
    (tmp_path / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    (tmp_path / "c.json").write_text(json.dumps({i: systems["VinVL-base"][i] for i in ids}))
    out = tmp_path / "run"
    proc = run_cli("score", "--refs", str(tmp_path / "refs.json"), "--cand", f"vinvl={tmp_path / 'c.json'}",
                   "--metrics", "bertscore", "--bertscore-model", minilm, "--bertscore-layer", "4",
                   "--option", "bertscore_idf=yes", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["signatures"]["bertscore"].startswith(
        "bertscore|model:all-MiniLM-L6-v2_L4|idf:yes|rescale:no|fallback:no|nrefs:4|")
    p, r, f = bert_score.score([systems["VinVL-base"][i] for i in ids], [refs[i] for i in ids],
                               model_type=minilm, num_layers=4, idf=True)
    assert summary["captioners"]["vinvl"]["bertscore"]["mean"] == pytest.approx(float(f.mean()), abs=TOL)
    assert summary["captioners"]["vinvl"]["bertscore_r"]["mean"] == pytest.approx(float(r.mean()), abs=TOL)


def test_module_does_not_import_torch_for_capeval_metrics():
    code = ("import sys; from capeval.registry import get_metric_class; "
            "c = get_metric_class('bertscore'); c.availability(); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_model_module_sets_tokenizer_hygiene():
    assert os.environ.get("TOKENIZERS_PARALLELISM") in {"false", "true"}
    assert bertscore_model.DEFAULT_MODEL == "roberta-large" and bertscore_model.DEFAULT_LAYER == 17
