"""Judge requests scheduled image by image across a run's captioners (issue 15): same numbers, grouped order."""

from __future__ import annotations

import json
import re

import pytest

import capeval
from capeval.errors import CapevalError
from capeval.judges.faultserver import FaultServer

pytest.importorskip("openai")

IMAGES = 6
CAPTIONERS = ("A", "B", "C", "D")


def refs() -> dict[str, list[str]]:
    return {str(i): [f"reference {i}", f"second reference {i}"] for i in range(IMAGES)}


def cands() -> dict[str, dict[str, str]]:
    out = {name: {str(i): f"{name.lower()} caption {i}" for i in range(IMAGES)} for name in CAPTIONERS}
    out["B"]["1"] = "mute caption"  # unreadable, also after the follow-up: a counted failure
    out["C"]["2"] = "<<fault:500,ok>> flaky caption"  # one retry
    out["D"]["3"] = out["A"]["3"]  # the same request twice in a run: sent once, then a cache hit
    return out


def image_of(payload) -> str:
    text = next(m for m in payload["messages"] if m["role"] == "user")["content"]
    return re.search(r"- reference (\d+)", text).group(1)


def candidate_of(payload) -> str:
    text = next(m for m in payload["messages"] if m["role"] == "user")["content"]
    return re.search(r"Candidate captions:\s*\n- (.*)", text).group(1)


def responder(payload) -> str:
    cand = candidate_of(payload)
    if "mute" in cand:
        return "I would rather not say."
    return json.dumps({"score": 10 * len(cand.split()) + payload["seed"], "reason": cand})


def run(tmp_path, schedule: str, seeds: int = 2, candidates=None, **extra):
    """One clair run on a fresh scripted server; returns (results, the payloads in arrival order)."""
    with FaultServer(responder=responder, record=True) as server:
        options = {"judge_base_url": server.base_url, "judge_model": "fault", "judge_retries": 2,
                   "judge_backoff": 0.01, "judge_schedule": schedule, "seeds": seeds,
                   "judge_cache": str(tmp_path / f"{schedule}-{seeds}.sqlite"), **extra}
        res = capeval.evaluate(refs(), candidates or cands(), metrics=["clair"], seeds=seeds, options=options)
        return res, list(server.state.payloads)


def comparable(res) -> str:
    """Everything a run reports (as JSON text, so NaN equals NaN), the server's prompt-cache counter left out."""
    summary = res.summary_dict()
    for usage in summary.get("usage", {}).values():
        usage.pop("cached_prompt_tokens", None)
    return json.dumps({
        "summary": summary, "signatures": res.signatures, "failures": res.failures,
        "samples": res.samples.to_dict("records"), "corpus": res.corpus.to_dict("records"),
        "details": res.details.to_dict("records"),
        "statistics": {k: v.to_dict("records") for k, v in res.statistics.items()},
    }, sort_keys=True, default=str)


@pytest.mark.parametrize("extra", [{}, {"cache": "off"}, {"judge_scoring": "likelihood"}],
                         ids=["cache", "no-cache", "likelihood"])
def test_grouped_schedule_changes_no_number(tmp_path, extra):
    grouped, sent_grouped = run(tmp_path, "image", **extra)
    plain, sent_plain = run(tmp_path, "captioner", **extra)
    assert comparable(grouped) == comparable(plain)
    assert sorted(map(json.dumps, sent_grouped)) == sorted(map(json.dumps, sent_plain))  # the same requests
    usage = grouped.summary_dict()["usage"]["clair"]
    if "judge_scoring" not in extra:
        assert usage["judge_retries"] == 2  # the flaky request, once per seed
        assert grouped.failures["B"]["clair"] == 2  # the mute one, once per seed
        follow_ups = 2
    else:
        follow_ups = 0  # likelihood asks no follow-up; its one request per item has no seed
    if "cache" in extra:
        assert usage["judge_cache_hits"] == 0
    else:
        # generate: D's copy of A's request, once per seed; likelihood (no seed in the request): that copy,
        # then every request of seed 1
        assert usage["judge_cache_hits"] == (2 if "judge_scoring" not in extra else 1 + IMAGES * len(CAPTIONERS))
    assert usage["judge_calls"] + usage["judge_cache_hits"] == IMAGES * len(CAPTIONERS) * 2 + follow_ups


def test_one_images_captioners_arrive_back_to_back(tmp_path):
    clean = {name: {str(i): f"{name.lower()} caption {i}" for i in range(IMAGES)} for name in CAPTIONERS}
    _, grouped = run(tmp_path, "image", seeds=1, candidates=clean, judge_concurrency=1)
    # image-major: 0 0 0 0 1 1 1 1 ... (the four captioners of an image one after another)
    assert [image_of(p) for p in grouped] == [str(i) for i in range(IMAGES) for _ in CAPTIONERS]
    assert [candidate_of(p) for p in grouped[:4]] == ["a caption 0", "b caption 0", "c caption 0", "d caption 0"]
    _, plain = run(tmp_path, "captioner", seeds=1, candidates=clean, judge_concurrency=1)
    assert [image_of(p) for p in plain] == [str(i) for _ in CAPTIONERS for i in range(IMAGES)]  # as before


def test_endpoint_pool_keeps_an_image_on_one_endpoint(tmp_path):
    with FaultServer(responder=responder, record=True) as a, FaultServer(responder=responder, record=True) as b:
        pool = tmp_path / "pool.yaml"
        pool.write_text(f"model: fault\nendpoints:\n  - name: a\n    base_url: {a.base_url}\n"
                        f"  - name: b\n    base_url: {b.base_url}\n")
        many = {str(i): [f"reference {i}"] for i in range(40)}
        caps = {name: {i: f"{name} caption {i}" for i in many} for name in CAPTIONERS}
        res = capeval.evaluate(many, caps, metrics=["clair"], options={
            "judge_endpoints": str(pool), "judge_model": "fault", "cache": "off"})
        where = {"a": {image_of(p) for p in a.state.payloads}, "b": {image_of(p) for p in b.state.payloads}}
        assert len(a.state.payloads) + len(b.state.payloads) == 40 * len(CAPTIONERS)
    assert not where["a"] & where["b"] and where["a"] and where["b"]  # every image on one endpoint, both used
    assert res.summary["n"].tolist() == [40] * len(CAPTIONERS)


def test_bad_schedule_is_a_clear_error(tmp_path):
    with pytest.raises(CapevalError, match="judge_schedule must be one of image, captioner, got 'random'"):
        run(tmp_path, "random")


def test_mllm_judge_grouped_schedule_changes_no_number(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(IMAGES):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")
    clean = {name: {str(i): f"{name.lower()} caption {i}" for i in range(IMAGES)} for name in CAPTIONERS}
    out = {}
    for schedule in ("image", "captioner"):
        with FaultServer(record=True) as server:
            res = capeval.evaluate(refs(), clean, metrics=["mllm_judge"], options={
                "judge_base_url": server.base_url, "judge_model": "fault", "images": str(folder),
                "judge_schedule": schedule, "judge_concurrency": 1,
                "judge_cache": str(tmp_path / f"{schedule}.sqlite")})
            urls = [next(part["image_url"]["url"] for m in p["messages"] if isinstance(m["content"], list)
                         for part in m["content"] if part["type"] == "image_url") for p in server.state.payloads
                    if all(m["role"] != "assistant" for m in p["messages"])]  # first asks, not follow-ups
        out[schedule] = comparable(res), urls
    assert out["image"][0] == out["captioner"][0]
    grouped, plain = out["image"][1], out["captioner"][1]
    assert sorted(grouped) == sorted(plain) and len(grouped) == IMAGES * len(CAPTIONERS)
    assert all(len(set(grouped[k:k + 4])) == 1 for k in range(0, len(grouped), 4))  # an image's 4 back to back
    assert len(set(plain[:4])) == 4  # before: one captioner's images, one after another


def test_pairwise_grouped_schedule_changes_no_number(tmp_path):
    clean = {name: {str(i): f"{name.lower()} caption {i}" for i in range(IMAGES)} for name in CAPTIONERS}
    out = {}
    for schedule in ("image", "captioner"):
        with FaultServer(record=True) as server:
            res = capeval.evaluate(refs(), clean, metrics=["pairwise"], options={
                "judge_base_url": server.base_url, "judge_model": "fault", "judge_schedule": schedule,
                "judge_concurrency": 1, "judge_cache": str(tmp_path / f"pair-{schedule}.sqlite")})
            firsts = [p for p in server.state.payloads if all(m["role"] != "assistant" for m in p["messages"])]
            texts = [" ".join(m["content"] for m in p["messages"] if isinstance(m["content"], str)) for p in firsts]
        out[schedule] = comparable(res), [re.search(r"reference (\d+)", t).group(1) for t in texts]
    assert out["image"][0] == out["captioner"][0]
    compared = len(CAPTIONERS) - 1  # the first captioner is the baseline
    # both orders of each compared captioner, image by image: 6 requests per image
    assert out["image"][1] == [str(i) for i in range(IMAGES) for _ in range(2 * compared)]
    assert out["captioner"][1] == [str(i) for _ in range(compared) for i in range(IMAGES) for _ in range(2)]
