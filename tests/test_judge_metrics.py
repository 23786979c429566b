"""clair, mllm_judge and pairwise end to end through capeval.evaluate against a scripted judge server."""

from __future__ import annotations

import base64
import io
import json
import math
import re

import numpy as np
import pytest
from PIL import Image
from sig_helpers import judge_tail

import capeval
from capeval.errors import CapevalError, InputError
from capeval.judges.faultserver import FaultServer
from capeval.rundir import load_run


def user_text(payload) -> str:
    content = payload["messages"][-1]["content"] if payload["messages"][-1]["role"] == "user" else ""
    first_user = next(m for m in payload["messages"] if m["role"] == "user")["content"]
    if isinstance(first_user, list):
        first_user = " ".join(p.get("text", "") for p in first_user if p["type"] == "text")
    return first_user if not content or isinstance(content, list) else first_user + "\n" + content


def options(server, tmp_path, **kw):
    base = {"judge_base_url": server.base_url, "judge_model": "fault", "judge_cache": str(tmp_path / "c.sqlite"),
            "judge_retries": 1, "judge_backoff": 0.01}
    base.update(kw)
    return base


# ---------------------------------------------------------------------------------------------------- CLAIR

def clair_responder(payload):
    text = user_text(payload)
    cand = re.search(r"Candidate captions:\s*\n- (.*)", text).group(1)
    if "mute" in cand:
        return "I would rather not say."  # unreadable, also after the follow-up
    base = 90 if cand.startswith("good") else 10
    return json.dumps({"score": base + payload["seed"], "reason": f"judged {cand}"})


def test_clair_scores_seeds_failures_and_signature(tmp_path):
    refs = {str(i): [f"reference {i}", "another reference"] for i in range(6)}
    cands = {
        "A": {str(i): f"good {i}" for i in range(6)},
        "B": {**{str(i): f"bad {i}" for i in range(5)}, "5": "mute 5"},
    }
    with FaultServer(responder=clair_responder) as server:
        res = capeval.evaluate(refs, cands, metrics=["clair"], seeds=3,
                               options=options(server, tmp_path, seeds=3))
        requests_first = server.state.requests
        res.write(tmp_path / "run")
        # the same command again: everything comes from the cache, identical results
        again = capeval.evaluate(refs, cands, metrics=["clair"], seeds=3,
                                 options=options(server, tmp_path, seeds=3))
        assert server.state.requests == requests_first
    s = res.summary_dict()
    # per seed the corpus mean of A is (90 + seed) / 100; mean over seeds 0.91, std (ddof=1) 0.01
    assert s["captioners"]["A"]["clair"]["mean"] == pytest.approx(0.91)
    assert s["captioners"]["A"]["clair"]["std"] == pytest.approx(0.01)
    assert s["captioners"]["A"]["clair"]["seeds"] == 3
    # B: 5 readable samples at (10 + seed) / 100, the mute one is NaN and left out of the mean (not 0)
    assert s["captioners"]["B"]["clair"]["mean"] == pytest.approx(0.11)
    assert s["captioners"]["B"]["clair"]["n"] == 5
    assert s["failures"]["B"]["clair"] == 3  # one per seed
    assert "A" not in s.get("failures", {}) or not s["failures"]["A"]
    assert s["signatures"]["clair"] == ("clair|judge:fault|prompt:clair-v2|temp:0.7|seeds:3|"
                                        + judge_tail("clair-v2", server.base_url, 256, v="2"))
    mute = res.samples[(res.samples.captioner == "B") & (res.samples.sample_id == "5")]
    assert mute["value"].isna().all()
    details = res.details[(res.details.captioner == "B") & (res.details.sample_id == "5")]
    assert details["detail"].str.contains("rather not say").all()
    assert details["detail"].str.startswith("[unparsed").all()
    a0 = res.samples[(res.samples.captioner == "A") & (res.samples.seed == 0)]["value"]
    assert np.allclose(a0, 0.90)
    # 36 first requests + 3 follow-ups for the mute sample (one per seed), no more
    assert requests_first == 36 + 3
    usage = s["usage"]["clair"]
    assert usage["judge_calls"] == 39 and usage["judge_cache_hits"] == 0 and usage["prompt_tokens"] > 0
    assert again.summary_dict()["captioners"] == s["captioners"]
    assert again.summary_dict()["usage"]["clair"]["judge_cache_hits"] == 39
    run = load_run(tmp_path / "run")
    assert run.manifest["usage"]["clair"]["judge_calls"] == 39


def test_clair_prompt_lists_candidate_and_references(tmp_path):
    with FaultServer(record=True) as server:
        capeval.evaluate({"1": ["ref one", "ref two"]}, {"s": {"1": "my caption"}}, metrics=["clair"],
                         options=options(server, tmp_path, seeds=1))
        payload = server.state.payloads[0]
    text = payload["messages"][0]["content"]
    assert "- my caption" in text and "- ref one\n- ref two" in text
    assert payload["temperature"] == 0.0 and payload["seed"] == 0
    assert payload["response_format"]["json_schema"]["schema"]["required"] == ["score", "reason"]


def test_user_template_is_used_and_named_by_hash(tmp_path):
    tpl = tmp_path / "paper.jinja"
    tpl.write_text("Candidates:\n{% for c in candidates %}- {{ c }}\n{% endfor %}Refs: {{ references|join('; ') }}\n"
                   "Score 0-100 as JSON.")
    with FaultServer(record=True) as server:
        res = capeval.evaluate({"1": ["r"]}, {"s": {"1": "c"}}, metrics=["clair"],
                               options=options(server, tmp_path, judge_template=str(tpl)))
        assert server.state.payloads[0]["messages"][0]["content"].startswith("Candidates:\n- c\nRefs: r")
    assert re.search(r"\|prompt:paper@[0-9a-f]{8}\|", res.signatures["clair"])


def test_metric_specific_template_wins_over_judge_template(tmp_path):
    mine = tmp_path / "mine-v2.jinja"
    mine.write_text("{% for c in candidates %}{{ c }}{% endfor %} vs {{ references|join(', ') }}: score 0-100?")
    with FaultServer(record=True) as server:
        res = capeval.evaluate({"1": ["r"]}, {"s": {"1": "c"}}, metrics=["clair"],
                               options=options(server, tmp_path, clair_template=str(mine),
                                               judge_template="pairwise-v1"))
        assert server.state.payloads[0]["messages"] == [{"role": "user", "content": "c vs r: score 0-100?"}]
    assert "|prompt:mine-v2@" in res.signatures["clair"]


def test_bad_template_is_a_clear_error(tmp_path):
    with pytest.raises(CapevalError, match="neither a file nor a shipped template"):
        capeval.evaluate({"1": ["r"]}, {"s": {"1": "c"}}, metrics=["clair"],
                         options={"judge_template": "no-such-template", "judge_base_url": "http://127.0.0.1:9/v1"})


# ---------------------------------------------------------------------------------------------- MLLM judge

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def image_colour(payload) -> str:
    parts = next(m for m in payload["messages"] if m["role"] == "user")["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    assert url.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    rgb = img.getpixel((2, 2))
    return min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], rgb, strict=True)))


def mllm_responder(payload):
    colour = image_colour(payload)
    caption = re.search(r'Caption: "(.*)"', user_text(payload)).group(1)
    good = colour in caption
    grade = 5 if good else 1
    return json.dumps({"reason": f"image is {colour}", "accuracy": grade, "completeness": 4,
                       "hallucination": grade, "detail": 3, "score": grade})


def test_mllm_judge_sends_each_image_as_a_data_url(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    ids = {"1": "red", "2": "green", "3": "blue"}
    for sid, colour in ids.items():
        Image.new("RGB", (16, 16), COLOURS[colour]).save(images / f"{sid}.png")
    refs = {sid: [f"a {c} square"] for sid, c in ids.items()}
    cands = {"right": {sid: f"a {c} square" for sid, c in ids.items()},
             "wrong": {"1": "a blue square", "2": "a red square", "3": "a blue square"}}
    with FaultServer(responder=mllm_responder) as server:
        res = capeval.evaluate(refs, cands, metrics=["mllm_judge"],
                               options=options(server, tmp_path, images=str(images), seeds=1))
    s = res.summary_dict()["captioners"]
    assert s["right"]["mllm_judge"]["mean"] == 5.0
    assert s["wrong"]["mllm_judge"]["mean"] == pytest.approx((1 + 1 + 5) / 3)
    assert s["wrong"]["mllm_judge_completeness"]["mean"] == 4.0
    assert s["wrong"]["mllm_judge_hallucination"]["mean"] == pytest.approx(7 / 3)
    assert res.signatures["mllm_judge"] == ("mllm_judge|judge:fault|prompt:mllm-judge-v2|temp:0|seeds:1|scale:1-5|"
                                            + judge_tail("mllm-judge-v2", server.base_url, 512, v="2"))


def test_mllm_judge_missing_image_names_the_sample(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (4, 4)).save(images / "1.png")
    with FaultServer() as server, pytest.raises(InputError, match="'2'.*no image found"):
        capeval.evaluate({"1": ["r"], "2": ["r"]}, {"s": {"1": "c", "2": "c"}}, metrics=["mllm_judge"],
                         options=options(server, tmp_path, images=str(images)))


# ------------------------------------------------------------------------------------------------ pairwise

def rank(caption: str) -> int:
    return 2 if "GOOD" in caption else 0 if "BAD" in caption else 1


def fair_responder(payload):
    text = user_text(payload)
    c1 = re.search(r'Caption 1: "(.*)"', text).group(1)
    c2 = re.search(r'Caption 2: "(.*)"', text).group(1)
    winner = "Tie" if rank(c1) == rank(c2) else "Caption 1" if rank(c1) > rank(c2) else "Caption 2"
    return json.dumps({"reason": "by rank", "winner": winner})


def biased_responder(payload):
    return json.dumps({"reason": "the first one, always", "winner": "Caption 1"})


PAIR_REFS = {str(i): [f"ref {i}"] for i in range(4)}
PAIR_CANDS = {
    "base": {str(i): f"plain {i}" for i in range(4)},
    "better": {"0": "GOOD 0", "1": "GOOD 1", "2": "GOOD 2", "3": "plain 3"},
    "worse": {"0": "BAD 0", "1": "plain 1", "2": "BAD 2", "3": "GOOD 3"},
}


def test_pairwise_hand_computed(tmp_path):
    with FaultServer(responder=fair_responder, record=True) as server:
        res = capeval.evaluate(PAIR_REFS, PAIR_CANDS, metrics=["pairwise"], options=options(server, tmp_path))
        # two captioners x four images x two orders, but a caption equal to the baseline's ("plain 3" for
        # better, "plain 1" for worse) gives the same request in both orders: identical requests go once
        assert len(server.state.payloads) == 2 * 4 * 2 - 2
    s = res.summary_dict()["captioners"]
    # better: win, win, win, tie -> (100 + 100 + 100 + 0) / 4
    assert s["better"]["pairwise"]["mean"] == pytest.approx(75.0)
    assert s["better"]["pairwise_win"]["mean"] == pytest.approx(0.75)
    assert s["better"]["pairwise_tie"]["mean"] == pytest.approx(0.25)
    # worse: loss, tie, loss, win -> (-100 + 0 - 100 + 100) / 4
    assert s["worse"]["pairwise"]["mean"] == pytest.approx(-25.0)
    assert s["worse"]["pairwise_loss"]["mean"] == pytest.approx(0.5)
    assert s["base"]["pairwise"]["mean"] is None  # the baseline is not compared with itself
    assert res.signatures["pairwise"] == ("pairwise|judge:fault|prompt:pairwise-v2|temp:0|seeds:1|baseline:base|"
                                          "orders:both|image:no|" + judge_tail("pairwise-v2", server.base_url, 512))


def test_pairwise_both_orders_cancel_position_bias(tmp_path):
    with FaultServer(responder=biased_responder) as server:
        res = capeval.evaluate(PAIR_REFS, PAIR_CANDS, metrics=["pairwise"], options=options(server, tmp_path))
    s = res.summary_dict()["captioners"]
    for name in ("better", "worse"):
        assert s[name]["pairwise"]["mean"] == 0.0
        assert s[name]["pairwise_win"]["mean"] == 0.5 and s[name]["pairwise_loss"]["mean"] == 0.5


def test_pairwise_chosen_baseline_and_bad_name(tmp_path):
    with FaultServer(responder=fair_responder) as server:
        res = capeval.evaluate(PAIR_REFS, PAIR_CANDS, metrics=["pairwise"],
                               options=options(server, tmp_path, pairwise_baseline="better"))
        s = res.summary_dict()["captioners"]
        # base vs better: loss, loss, loss, tie -> -75
        assert s["base"]["pairwise"]["mean"] == pytest.approx(-75.0)
        assert s["better"]["pairwise"]["mean"] is None
        with pytest.raises(CapevalError, match="pairwise_baseline 'nobody'"):
            capeval.evaluate(PAIR_REFS, PAIR_CANDS, metrics=["pairwise"],
                             options=options(server, tmp_path, pairwise_baseline="nobody"))


def test_pairwise_unreadable_order_is_a_failure(tmp_path):
    def responder(payload):
        text = user_text(payload)
        return "hmm, hard to say" if "GOOD 1" in text else fair_responder(payload)

    with FaultServer(responder=responder) as server:
        res = capeval.evaluate(PAIR_REFS, PAIR_CANDS, metrics=["pairwise"], options=options(server, tmp_path))
    s = res.summary_dict()
    assert s["captioners"]["better"]["pairwise"]["mean"] == pytest.approx((100 + 100 + 0) / 3)
    assert s["captioners"]["better"]["pairwise"]["n"] == 3
    assert s["failures"]["better"]["pairwise"] == 1
    v = res.samples[(res.samples.captioner == "better") & (res.samples.sample_id == "1")
                    & (res.samples.metric == "pairwise")]["value"]
    assert math.isnan(float(v.iloc[0]))


def test_pairwise_with_images_sends_them_in_both_orders(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for sid in PAIR_REFS:
        Image.new("RGB", (8, 8), COLOURS["red"]).save(images / f"{sid}.png")
    with FaultServer(responder=fair_responder, record=True) as server:
        res = capeval.evaluate(PAIR_REFS, PAIR_CANDS, metrics=["pairwise"],
                               options=options(server, tmp_path, images=str(images)))
        payloads = list(server.state.payloads)
    assert "|image:yes|" in res.signatures["pairwise"]
    assert payloads and all(image_colour(p) == "red" for p in payloads)
    assert all("Look at the attached image." in user_text(p) for p in payloads)
    assert res.summary_dict()["captioners"]["better"]["pairwise"]["mean"] == pytest.approx(75.0)
