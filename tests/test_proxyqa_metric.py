"""proxy_qa end to end through the judge client against a rule-based OpenAI-compatible server (scores by hand).

The "oracle" server answers like a perfectly literal reader: it picks the one option whose text appears in
the caption, "Cannot answer" when none does (if offered), and otherwise replies "Hmm." (unparsable). For an
image request it reads the caption hidden in the PNG's text chunk. Every expected score below is worked out
by hand from the captions.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from capeval.api import evaluate
from capeval.proxyqa.questions import load_questions
from capeval.proxyqa.shuffle import permutation

aiohttp_web = pytest.importorskip("aiohttp.web")

NUMBER_WORDS = {"one", "two", "three", "four", "five"}
QUESTIONS = [
    {"question_id": "q1", "image_id": "img1", "question": "What animal is on the mat?",
     "options": ["cat", "dog", "bird"], "answer": "cat", "category": "object", "split": "A"},
    {"question_id": "q2", "image_id": "img1", "question": "What color is the mat?",
     "options": ["red", "blue", "green", "yellow"], "answer": "red", "category": "attribute", "split": "A"},
    {"question_id": "q3", "image_id": "img1", "question": "How many animals are there?", "answer": ["2"],
     "category": "count", "split": "A"},
    {"question_id": "q4", "image_id": "img2", "question": "What vehicle is on the road?",
     "options": ["bus", "car"], "answer": "bus", "category": "object", "split": "B"},
    {"question_id": "q5", "image_id": "img2", "question": "Is the road wet?", "options": ["Yes", "No"],
     "answer": "No", "category": "scene", "split": "B"},
]
REFS = {"img1": ["two cats on a red mat"], "img2": ["a bus on a dry road"]}
GOOD = {"img1": "Two cats on a red mat.", "img2": "A bus on a dry road."}
BAD = {"img1": "A dog on a blue mat.", "img2": "A car on a road."}
VAGUE = {"img1": "Something on a mat.", "img2": "A thing on a road."}
HALF = {"img1": "Two cats on a blue mat.", "img2": "A car on a road."}


# --------------------------------------------------------------------------------------------- the oracle


def _text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return str(content or "")


def _image_caption(messages: list[dict]) -> str | None:
    for m in messages:
        if isinstance(m.get("content"), list):
            for part in m["content"]:
                if part.get("type") == "image_url":
                    b64 = part["image_url"]["url"].split(",", 1)[1]
                    return Image.open(io.BytesIO(base64.b64decode(b64))).text["caption"]
    return None


def oracle_reply(messages: list[dict]) -> str:
    system = next((_text_of(m) for m in messages if m["role"] == "system"), "")
    user = next(_text_of(m) for m in messages if m["role"] == "user")
    if system.startswith("You grade answers"):
        answer = re.search(r"Answer to grade: (.*)", user).group(1).strip().lower()
        return json.dumps({"verdict": "correct" if answer in {"a pair", "pair"} else "incorrect"})
    cap = re.search(r"Caption:\n(.*?)\n\n", user, re.S)
    caption = cap.group(1) if cap else _image_caption(messages)
    words = caption.lower()
    if "[[ramble]]" in words and not _text_of(messages[-1]).startswith("Reply with only"):
        return "<think>Let me look at the caption carefully. The caption says"  # cut off: no answer
    options = re.findall(r"^([A-Z])\. (.*)$", user, re.M)
    if not options:  # an open question: a number word from the caption, or the scripted answer
        m = re.search(r"\[\[answer:(.*?)\]\]", caption)
        if m:
            return m.group(1)
        found = [w for w in re.findall(r"[a-z]+", words) if w in NUMBER_WORDS]
        return found[0].capitalize() if found else "no idea"
    if "[[first]]" in words:
        return options[0][0]
    hits = [letter for letter, text in options if not text.startswith("Cannot")
            and re.search(rf"\b{re.escape(text.lower())}s?\b", words)]
    if len(hits) == 1:
        return f"<think>The caption says: {caption} Options {', '.join(options[0])}...</think>\nAnswer: " \
               f"{hits[0]}" if "[[think]]" in words else hits[0]
    cannot = [letter for letter, text in options if text.startswith("Cannot")]
    return cannot[0] if cannot else "Hmm."


class Oracle:
    """The oracle server on 127.0.0.1 in a background thread; counts requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.image_requests = 0
        self.grader_requests = 0
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self.port = 0

    async def _chat(self, request):
        payload = await request.json()
        self.requests += 1
        messages = payload["messages"]
        if _image_caption(messages) is not None:
            self.image_requests += 1
        if _text_of(messages[0]).startswith("You grade answers"):
            self.grader_requests += 1
        text = oracle_reply(messages)
        return aiohttp_web.json_response({
            "id": "x", "object": "chat.completion", "created": 0, "model": payload["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        })

    def __enter__(self) -> Oracle:
        ready = threading.Event()

        async def boot():
            app = aiohttp_web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            self._runner = aiohttp_web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = aiohttp_web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def oracle():
    with Oracle() as server:
        yield server


@pytest.fixture
def qfile(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


def _options(oracle: Oracle, qfile: Path, tmp_path: Path, **extra) -> dict:
    return {"proxy_qa_questions": str(qfile), "judge_model": "oracle", "judge_base_url": oracle.base_url,
            "judge_cache": str(tmp_path / "cache.sqlite"), "judge_prices": None, **extra}


def _summary(results) -> dict:
    return results.summary_dict()["captioners"]


# --------------------------------------------------------------------------------------------- tests


def test_scores_by_hand(oracle, qfile, tmp_path):
    res = evaluate(REFS, {"good": GOOD, "bad": BAD}, ["proxy_qa"], seeds=2, options=_options(oracle, qfile, tmp_path))
    s = _summary(res)
    # good: q1 cat, q2 red, q3 "Two" -> 2, q4 bus all right; q5 (yes/no, neither in the caption) -> "Hmm.", a
    # retry, "Hmm." again -> unparsable: left out, counted. bad: dog, blue, "no idea", car: all wrong.
    assert s["good"]["proxy_qa"] == {"mean": 1.0, "std": 0.0, "n": 2, "seeds": 2}
    assert s["bad"]["proxy_qa"]["mean"] == 0.0
    assert res.failures["good"]["proxy_qa"] == 2 and res.failures["bad"]["proxy_qa"] == 2  # 1 per seed
    assert s["good"]["proxy_qa.cat.object"]["mean"] == 1.0
    assert s["good"]["proxy_qa.cat.scene"]["mean"] is None and s["good"]["proxy_qa.cat.scene"]["n"] == 0
    assert s["good"]["proxy_qa.split.b"]["mean"] == 1.0 and s["bad"]["proxy_qa.split.a"]["mean"] == 0.0
    assert "proxy_qa_acc" not in s["good"]  # only with the unanswerable option
    samples = res.samples[(res.samples.metric == "proxy_qa") & (res.samples.seed == 0)]
    assert samples.set_index(["captioner", "sample_id"])["value"].to_dict() == {
        ("good", "img1"): 1.0, ("good", "img2"): 1.0, ("bad", "img1"): 0.0, ("bad", "img2"): 0.0}
    details = res.details[(res.details.captioner == "good") & (res.details.seed == 0)]
    rows = json.loads(details.set_index("sample_id").loc["img2", "detail"])
    assert rows[1]["qid"] == "q5" and rows[1]["score"] is None and rows[1]["method"].startswith("unparsable")
    assert "Hmm." in rows[1]["reply"]
    sig = res.signatures["proxy_qa"]
    assert sig.startswith("proxy_qa|judge:oracle|prompt:proxy-qa-v1|questions:questions@") and "|nq:5|" in sig
    assert "|unans:no|shuffle:yes|grader:exact|" in sig
    assert res.usage["proxy_qa"]["judge_calls"] > 0
    # 2 captioners x 2 seeds x (5 questions + 1 retry) = 24 requests; a rerun is answered by the cache
    assert oracle.requests == 24
    again = evaluate(REFS, {"good": GOOD, "bad": BAD}, ["proxy_qa"], seeds=2,
                     options=_options(oracle, qfile, tmp_path))
    assert oracle.requests == 24 and _summary(again) == s


def test_unanswerable_option_by_hand(oracle, qfile, tmp_path):
    res = evaluate(REFS, {"vague": VAGUE, "good": GOOD}, ["proxy_qa"],
                   options=_options(oracle, qfile, tmp_path, proxy_qa_unanswerable=True))
    s = _summary(res)
    # vague: q1 cannot (K=3) 1/3+0.05, q2 cannot (K=4) 0.30, q3 "no idea" 0, q4 cannot (K=2) 0.55;
    # q5 is a yes/no question: no "cannot" option, "Hmm." -> unparsable.
    q1, q2, q4 = 1 / 3 + 0.05, 0.30, 0.55
    assert s["vague"]["proxy_qa"]["mean"] == pytest.approx((q1 + q2 + 0 + q4) / 4)  # 0.308333
    assert s["vague"]["proxy_qa_acc"]["mean"] == 0.0
    assert s["vague"]["proxy_qa_cannot"]["mean"] == pytest.approx(3 / 4)
    assert s["good"]["proxy_qa"]["mean"] == 1.0 and s["good"]["proxy_qa_cannot"]["mean"] == 0.0
    per = res.samples[(res.samples.metric == "proxy_qa") & (res.samples.captioner == "vague")]
    values = per.set_index("sample_id")["value"]
    assert values["img1"] == pytest.approx((q1 + q2 + 0) / 3) and values["img2"] == pytest.approx(q4)
    assert s["vague"]["proxy_qa.cat.object"]["mean"] == pytest.approx((q1 + q4) / 2)
    assert "|unans:yes|" in res.signatures["proxy_qa"]


def test_option_shuffle_against_a_position_biased_reader(oracle, qfile, tmp_path):
    biased = {"img1": "[[first]] a mat", "img2": "[[first]] a road"}
    seeds = 6
    res = evaluate(REFS, {"biased": biased}, ["proxy_qa"], seeds=seeds, options=_options(oracle, qfile, tmp_path))
    qs = load_questions(qfile)
    expected = []
    for seed in range(seeds):
        # always option A = original option permutation(qid, seed, n)[0]; q3 (open) gets "no idea" -> 0
        scores = [float(permutation(q.qid, seed, len(q.options))[0] == q.answer_index) if q.is_mc else 0.0
                  for q in qs.questions]
        expected.append(np.mean(scores))
    corpus = res.corpus[res.corpus.metric == "proxy_qa"].sort_values("seed")["value"].to_numpy()
    assert corpus == pytest.approx(expected)
    assert len(set(expected)) > 1  # the order really changes with the seed
    s = _summary(res)["biased"]["proxy_qa"]
    assert s["mean"] == pytest.approx(np.mean(expected)) and s["std"] == pytest.approx(np.std(expected, ddof=1))


def test_with_image_utility_ratio(oracle, qfile, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for image_id, caption in GOOD.items():
        info = PngImagePlugin.PngInfo()
        info.add_text("caption", caption)
        Image.new("RGB", (8, 8), "white").save(images / f"{image_id}.png", pnginfo=info)
    opts = _options(oracle, qfile, tmp_path, with_image=True, images=str(images))
    res = evaluate(REFS, {"good": GOOD, "half": HALF, "bad": BAD}, ["proxy_qa"], options=opts)
    s = _summary(res)
    # from the image: all answerable questions right -> 1.0 (q5 unparsable as from the caption)
    for cap in ("good", "half", "bad"):
        assert s[cap]["proxy_qa_image"]["mean"] == 1.0
    assert s["good"]["proxy_qa_utility"]["mean"] == 1.0
    # half: q1 cat right, q2 blue wrong, q3 "Two" right, q4 car wrong -> 2/4
    assert s["half"]["proxy_qa"]["mean"] == 0.5 and s["half"]["proxy_qa_utility"]["mean"] == 0.5
    assert s["half"]["proxy_qa_gap"]["mean"] == 0.5
    assert s["bad"]["proxy_qa_utility"]["mean"] == 0.0
    # the image questions were asked once (5 + 1 retry), not once per captioner
    assert oracle.image_requests == 6
    assert "|image_judge:oracle|" in res.signatures["proxy_qa_utility"]


def test_llm_grader_for_open_answers(oracle, qfile, tmp_path):
    caps = {"pair": {"img1": "[[answer:a pair]] cats on a red mat", "img2": GOOD["img2"]},
            "three": {"img1": "[[answer:three]] cats on a red mat", "img2": GOOD["img2"]}}
    exact = evaluate(REFS, caps, ["proxy_qa"], options=_options(oracle, qfile, tmp_path))
    assert _summary(exact)["pair"]["proxy_qa.cat.count"]["mean"] == 0.0
    assert oracle.grader_requests == 0
    llm = evaluate(REFS, caps, ["proxy_qa"], options=_options(oracle, qfile, tmp_path, proxy_qa_grader="llm"))
    s = _summary(llm)
    assert s["pair"]["proxy_qa.cat.count"]["mean"] == 1.0  # "a pair" judged equal to "2"
    assert s["three"]["proxy_qa.cat.count"]["mean"] == 0.0  # "three" != "2", also for the grader
    assert oracle.grader_requests == 2  # only the answers that failed the exact match
    assert "|grader:llm:proxy-qa-grader-v1|" in llm.signatures["proxy_qa"]


def test_reasoning_replies_retry_and_missing_option(oracle, qfile, tmp_path):
    thinking = {"img1": "[[think]] Two cats on a red mat.", "img2": "[[think]] A bus on a dry road."}
    rambling = {"img1": "[[ramble]] Two cats on a red mat.", "img2": "[[ramble]] A bus on a dry road."}
    res = evaluate(REFS, {"think": thinking, "ramble": rambling}, ["proxy_qa"],
                   options=_options(oracle, qfile, tmp_path))
    assert _summary(res)["think"]["proxy_qa"]["mean"] == 1.0
    # every first reply is an unterminated <think>; the one follow-up gets the bare answer
    assert _summary(res)["ramble"]["proxy_qa"]["mean"] == 1.0
    rows = [r for d in res.details[res.details.captioner == "ramble"]["detail"] for r in json.loads(d)]
    assert {r["method"] for r in rows if r["qid"] != "q5"} == {"letter+retry", "open+retry-exact"}
    assert res.failures["ramble"]["proxy_qa"] == 1  # q5 stays unparsable
    from capeval.errors import CapevalError

    with pytest.raises(CapevalError, match="proxy_qa needs a question set"):
        evaluate(REFS, {"x": GOOD}, ["proxy_qa"], options={"judge_base_url": oracle.base_url})
    assert not math.isnan(res.summary["mean"].iloc[0])


def test_cli_shortcut(oracle, qfile, tmp_path, capsys):
    from capeval.cli import main

    cands = tmp_path / "good.json"
    cands.write_text(json.dumps({**GOOD, "img9": "an image without questions"}))
    out = tmp_path / "run"
    main(["proxy-qa", "--questions", str(qfile), "--cand", f"good={cands}", "--out", str(out), "--seeds", "2",
          "--unanswerable", "--judge-model", "oracle", "--judge-base-url", oracle.base_url,
          "--option", f"judge_cache={tmp_path / 'c.sqlite'}"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["captioners"]["good"]["proxy_qa"]["mean"] == 1.0
    assert summary["captioners"]["good"]["proxy_qa"]["seeds"] == 2
    assert summary["failures"]["good"]["proxy_qa"] == 2
    printed = capsys.readouterr().out
    assert "proxy_qa" in printed and "unparsable" in printed


def _png_with_caption(caption: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("caption", caption)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_vlmevalkit_tsv_with_base64_images(oracle, tmp_path):
    import pandas as pd

    img = base64.b64encode(_png_with_caption("Two cats on a red mat.")).decode()
    rows = [{"index": 10, "image": img, "question": "What animal is on the mat?", "A": "cat", "B": "dog",
             "C": "bird", "answer": "A", "category": "object", "split": "dev"},
            {"index": 11, "image": "10", "question": "What color is the mat?", "A": "red", "B": "blue",
             "C": None, "answer": "A", "category": "attribute", "split": "dev"}]
    tsv = tmp_path / "bench.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    opts = _options(oracle, tsv, tmp_path, with_image=True)
    res = evaluate({"10": ["a ref"]}, {"a": {"10": "A dog on a red mat."}}, ["proxy_qa"], options=opts)
    s = _summary(res)["a"]
    assert s["proxy_qa"]["mean"] == 0.5 and s["proxy_qa_image"]["mean"] == 1.0  # dog wrong, red right
    assert s["proxy_qa_utility"]["mean"] == 0.5 and s["proxy_qa.split.dev"]["mean"] == 0.5
    assert oracle.image_requests == 2


def test_with_image_needs_images(oracle, qfile, tmp_path):
    from capeval.errors import InputError

    with pytest.raises(InputError, match="with_image: no image file"):
        evaluate(REFS, {"good": GOOD}, ["proxy_qa"], options=_options(oracle, qfile, tmp_path, with_image=True))


def test_capeval_score_runs_proxy_qa(oracle, qfile, tmp_path):
    from capeval.cli import main

    refs, cands = tmp_path / "refs.json", tmp_path / "half.json"
    refs.write_text(json.dumps(REFS))
    cands.write_text(json.dumps(HALF))
    main(["score", "--refs", str(refs), "--cand", f"half={cands}", "--metrics", "proxy_qa,bleu", "--quiet",
          "--out", str(tmp_path / "run"), "--judge-model", "oracle", "--judge-base-url", oracle.base_url,
          "--option", f"proxy_qa_questions={qfile}", "--option", f"judge_cache={tmp_path / 'c.sqlite'}"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["captioners"]["half"]["proxy_qa"]["mean"] == 0.5  # q1, q3 right; q2, q4 wrong; q5 NaN
    assert "bleu_4" in summary["captioners"]["half"]
