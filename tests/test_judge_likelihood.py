"""Likelihood scoring (judge_scoring=likelihood) against a scripted server that returns known logprobs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from sig_helpers import judge_tail

import capeval
from capeval.errors import CapevalError
from capeval.judges.faultserver import FaultServer
from capeval.judges.logprobs import best_choice, choice_probs, expected_score, first_token


def entry(probs: dict[str, float], rest: float = 0.0) -> list[dict]:
    """One first-token logprobs entry with these token probabilities (plus a non-answer token)."""
    tops = [{"token": t, "logprob": math.log(p)} for t, p in probs.items()]
    if rest:
        tops.append({"token": "The", "logprob": math.log(rest)})
    tops.sort(key=lambda t: -t["logprob"])
    return [{"token": tops[0]["token"], "logprob": tops[0]["logprob"], "top_logprobs": tops}]


def options(server, tmp_path, **kw):
    base = {"judge_base_url": server.base_url, "judge_model": "fault", "judge_cache": str(tmp_path / "c.sqlite"),
            "judge_retries": 0, "judge_scoring": "likelihood"}
    base.update(kw)
    return base


def candidate_of(payload) -> str:
    return re.search(r"Candidate captions:\s*\n- (.*)", payload["messages"][-1]["content"]).group(1)


# what the scripted judge answers for each candidate, and the hand-computed expected CLAIR score
SCRIPT = {
    # E[digit] = (9*0.5 + 7*0.2 + 2*0.1) / 0.8 = 6.1 / 0.8 = 7.625 -> 7.625 / 9
    "dog on grass": (entry({"9": 0.5, "7": 0.2, " 2": 0.1}, rest=0.2), 7.625 / 9),
    # " 3" and "3" are one answer: (3*(0.3+0.3) + 0*0.2) / 0.8 = 2.25 -> 2.25 / 9
    "a red car": (entry({"3": 0.3, " 3": 0.3, "0": 0.2}, rest=0.2), 2.25 / 9),
    # only non-score tokens: a counted failure, never 0
    "nothing": (entry({"The": 0.6, "I": 0.4}), None),
    # no logprobs at all (the server leaves them out): a counted failure, never 0
    "silent": (None, None),
}


def scripted(payload):
    return SCRIPT[candidate_of(payload)][0]


def test_clair_likelihood_equals_hand_computed_expected_value(tmp_path):
    refs = {str(i): ["a dog on the grass", "a brown dog"] for i in range(4)}
    cands = {"m": dict(zip(refs, SCRIPT, strict=True))}
    with FaultServer(logprobs_responder=scripted, record=True) as server:
        res = capeval.evaluate(refs, cands, metrics=["clair"], seeds=2, options=options(server, tmp_path, seeds=2))
        sent = list(server.state.payloads)
    values = res.samples[res.samples.seed == 0].set_index("sample_id")["value"]
    assert values["0"] == pytest.approx(7.625 / 9, abs=1e-12)
    assert values["1"] == pytest.approx(2.25 / 9, abs=1e-12)
    assert np.isnan(values["2"]) and np.isnan(values["3"])  # failures are NaN, not 0
    s = res.summary_dict()
    assert s["captioners"]["m"]["clair"]["mean"] == pytest.approx((7.625 + 2.25) / 2 / 9, abs=1e-12)
    assert s["failures"]["m"]["clair"] == 4  # 2 samples x 2 seeds
    assert s["usage"]["clair"]["judge_errors"] == 2  # the reply without logprobs, once per seed
    assert s["signatures"]["clair"] == ("clair|judge:fault|prompt:clair-v2|temp:0|scoring:likelihood|seeds:2|"
                                        + judge_tail("clair-v2", server.base_url, 1, fmt="none", v="2"))
    # one-token requests at temperature 0 asking for top_logprobs, seed-free (seeds share the cached reply)
    assert {(p["max_tokens"], p["temperature"], p["logprobs"], p["top_logprobs"], "seed" in p) for p in sent} \
        == {(1, 0.0, True, 20, False)}
    assert "response_format" not in sent[0]
    # seed 1 is answered from the cache, except the reply without logprobs (never cached: asked again)
    assert len(sent) == 5
    details = res.details.set_index(["sample_id", "seed"])["detail"]
    assert "no score token" in details[("2", 0)]
    assert "no logprobs" in details[("3", 0)]


def test_reply_without_logprobs_is_counted_and_not_cached(tmp_path):
    refs = {"1": ["r"]}
    with FaultServer(default_faults=("nologprobs",) * 10) as server:
        res = capeval.evaluate(refs, {"m": {"1": "c"}}, metrics=["clair"], options=options(server, tmp_path))
        again = capeval.evaluate(refs, {"m": {"1": "c"}}, metrics=["clair"], options=options(server, tmp_path))
        assert server.state.requests == 2  # not cached: the rerun asks again (and is counted again)
    for r in (res, again):
        s = r.summary_dict()
        assert s["failures"]["m"]["clair"] == 1 and s["usage"]["clair"]["judge_errors"] == 1
        assert np.isnan(r.samples["value"]).all()


def test_likelihood_reply_comes_back_from_the_cache_with_its_logprobs(tmp_path):
    refs = {"1": ["a dog on the grass"]}
    cands = {"m": {"1": "dog on grass"}}
    with FaultServer(logprobs_responder=scripted) as server:
        first = capeval.evaluate(refs, cands, metrics=["clair"], options=options(server, tmp_path))
        second = capeval.evaluate(refs, cands, metrics=["clair"], options=options(server, tmp_path))
        assert server.state.requests == 1
    assert second.summary_dict()["usage"]["clair"]["judge_cache_hits"] == 1
    assert second.samples["value"].iloc[0] == first.samples["value"].iloc[0] == pytest.approx(7.625 / 9)


def test_likelihood_needs_a_template_with_a_likelihood_form(tmp_path):
    with pytest.raises(CapevalError, match="no likelihood form"):
        capeval.evaluate({"1": ["r"]}, {"m": {"1": "c"}}, metrics=["clair"],
                         options={"judge_scoring": "likelihood", "clair_template": "clair-v1",
                                  "judge_base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(CapevalError, match="judge_scoring must be one of generate, likelihood"):
        capeval.evaluate({"1": ["r"]}, {"m": {"1": "c"}}, metrics=["clair"],
                         options={"judge_scoring": "logits", "judge_base_url": "http://127.0.0.1:9/v1"})


def pair_script(payload):
    text = payload["messages"][-1]["content"]
    c1 = re.search(r'Caption 1: "(.*)"', text if isinstance(text, str) else "").group(1)
    # the judge prefers "GOOD" with p=0.7, tie 0.1, the other 0.2 -- in either position
    p1 = {"GOOD": 0.7, "BAD": 0.2}[c1.split()[0]]
    return entry({"1": p1, "2": 0.9 - p1, "0": 0.1})


def test_pairwise_likelihood_uses_each_verdicts_probability_in_both_orders(tmp_path):
    refs = {"1": ["ref"]}
    cands = {"base": {"1": "BAD caption"}, "mine": {"1": "GOOD caption"}}
    with FaultServer(logprobs_responder=pair_script) as server:
        res = capeval.evaluate(refs, cands, metrics=["pairwise"], options=options(server, tmp_path))
    s = res.summary_dict()["captioners"]["mine"]
    # forward (mine first): win 0.7, loss 0.2; backward (base first): p("1")=0.2 is base winning -> loss 0.2,
    # p("2")=0.7 -> win 0.7. win 0.7, tie 0.1, loss 0.2; score 100 x (0.7 - 0.2) = 50
    assert s["pairwise"]["mean"] == pytest.approx(50.0)
    assert s["pairwise_win"]["mean"] == pytest.approx(0.7)
    assert s["pairwise_tie"]["mean"] == pytest.approx(0.1)
    assert s["pairwise_loss"]["mean"] == pytest.approx(0.2)
    assert "|scoring:likelihood|" in res.signatures["pairwise"]


def test_logprob_readers_reject_malformed_input():
    assert first_token([{"token": "7"}]) == "malformed logprobs entry {'token': '7'}"
    assert "no logprobs" in expected_score(None).error
    assert not expected_score([{"token": "x", "logprob": 0.5, "top_logprobs": []}]).ok  # p > 1
    assert not choice_probs("garbage", {"A": "A"}).ok
    assert best_choice(entry({"C": 0.5, "A": 0.3}), {"A": "A", "B": "B"}).value == "A"


def test_proxy_qa_likelihood_answers_open_questions_briefly_and_deterministically(tmp_path):
    import json

    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question_id": "q1", "image_id": "img1", "question": "What color is the mat?",
         "options": ["red", "blue"], "answer": "red"},
        {"question_id": "q2", "image_id": "img1", "question": "How many cats?", "answer": ["2"]},
    ]))

    def letter_a(payload):
        return entry({"A": 0.7, "B": 0.3})

    with FaultServer(responder=lambda payload: "2", logprobs_responder=letter_a, record=True) as server:
        opts = options(server, tmp_path, proxy_qa_questions=str(questions), proxy_qa_shuffle="no", seeds=2)
        res = capeval.evaluate({"img1": ["two cats on a red mat"]}, {"m": {"img1": "two cats on a red mat"}},
                               metrics=["proxy_qa"], seeds=2, options=opts)
        sent = list(server.state.payloads)
    open_asks = [p for p in sent if "How many cats" in p["messages"][-1]["content"]]
    mc_asks = [p for p in sent if "What color" in p["messages"][-1]["content"]]
    # each asked once for both seeds (no seed in the request: the cache answers seed 1)
    assert len(open_asks) == 1 and len(mc_asks) == 1
    assert open_asks[0]["max_tokens"] == 16 and open_asks[0]["temperature"] == 0 and "seed" not in open_asks[0]
    assert "logprobs" not in open_asks[0] and "response_format" not in open_asks[0]
    assert mc_asks[0]["max_tokens"] == 1 and mc_asks[0]["logprobs"] is True
    assert res.samples.query("metric == 'proxy_qa'")["value"].tolist() == [1.0, 1.0]  # A = red; "2" matches
    sig = res.signatures["proxy_qa"]
    assert "|temp:0|" in sig and "|max_tokens:1|fmt:none|" in sig
    assert "|scoring:likelihood|" in sig and "|open_tokens:16|" in sig
