"""Asking the questions: caption (or image) + question -> judge request -> extracted, graded answer.

Implements the answering step of caption-as-proxy QA (CaptionQA, MetaCaptioner, Prism): the prompt comes from
a Jinja2 template in ``judges/`` (``proxy-qa-v1``), options are shuffled per question and seed
(:mod:`capeval.proxyqa.shuffle`), every call goes through capeval's judge client and cache
(:mod:`capeval.judges`). An unreadable reply gets one follow-up asking for the bare answer; if that fails too
the question is unparsable (NaN, counted). Open answers are matched after VQA normalisation and, with
``grader="llm"``, a non-matching answer is graded by the judge (``proxy-qa-grader-v1``).

With ``scoring="likelihood"`` (``--option judge_scoring=likelihood``) a multiple-choice question is asked for
one token at temperature 0 and the answer is the most probable valid option letter among the first token's
``top_logprobs`` (lm-evaluation-harness' multiple-choice rule); a reply without usable logprobs is
unparsable (NaN, counted), with no follow-up. Open questions are answered by generation in both modes; in
likelihood mode that generation is deterministic too (temperature 0, no seed) and capped at
:data:`OPEN_ANSWER_TOKENS` tokens, the length of "a single word or a short phrase" (a base model asked for one
would otherwise write until ``judge_max_tokens``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from capeval.judges import Judge, JudgeRequest, JudgeTemplate
from capeval.judges.parsing import json_schema_format, parse_choice, retry_request
from capeval.proxyqa.extract import LETTERS, Extraction, extract_choice, extract_open, open_match
from capeval.proxyqa.questions import Question
from capeval.proxyqa.scoring import Graded, score_choice
from capeval.proxyqa.shuffle import CANNOT_ANSWER_CAPTION, CANNOT_ANSWER_IMAGE, presented_options

GRADERS = ("exact", "llm")
_VERDICTS = {"correct": ("yes", "true", "right", "match"), "incorrect": ("no", "false", "wrong", "mismatch")}
OPEN_ANSWER_TOKENS = 16  # likelihood mode: completion tokens of an open answer (in the signature: open_tokens)
_REPLY_KEEP = 1000  # characters of a parsed reply kept in the details (an unparsable one is kept whole)


@dataclass(frozen=True)
class AskSettings:
    """How questions are put and graded."""

    unanswerable: bool = False
    shuffle: bool = True
    grader: str = "exact"
    retry: bool = True
    scoring: str = "generate"
    open_tokens: int | None = None  # likelihood mode: the cap on an open answer's tokens

    def __post_init__(self) -> None:
        if self.grader not in GRADERS:
            from capeval.errors import CapevalError

            raise CapevalError(f"proxy_qa_grader must be one of {', '.join(GRADERS)}, got {self.grader!r}")


@dataclass
class Item:
    """One question to ask, with the caption it is answered from (None: answered from ``images``)."""

    question: Question
    caption: str | None
    images: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    item: Item
    request: JudgeRequest
    shown: list[str]
    perm: list[int]
    cannot_shown: int | None


def prepare(item: Item, seed: int, template: JudgeTemplate, settings: AskSettings) -> _Prepared:
    """The judge request for one item, with the shown option order."""
    q = item.question
    cannot_text = CANNOT_ANSWER_CAPTION if item.caption is not None else CANNOT_ANSWER_IMAGE
    shown, perm = presented_options(q, seed, unanswerable=settings.unanswerable, shuffle=settings.shuffle,
                                    cannot_text=cannot_text)
    cannot_shown = perm.index(len(q.options)) if len(perm) > len(q.options) else None
    options = [(LETTERS[i], text) for i, text in enumerate(shown)]
    messages = template.messages(
        images=item.images or None, caption=item.caption, question=q.question, options=options, hint=q.hint,
        letters=", ".join(LETTERS[: len(shown)]),
    )
    request = JudgeRequest(messages=messages, seed=seed, template_hash=template.hash, tag=q.qid)
    if settings.scoring == "likelihood":
        from capeval.metrics.judge import likelihood_request

        request = likelihood_request(request) if q.is_mc else open_answer_request(
            request, settings.open_tokens or OPEN_ANSWER_TOKENS)
    return _Prepared(item, request, shown, perm, cannot_shown)


def open_answer_request(request: JudgeRequest, max_tokens: int = OPEN_ANSWER_TOKENS) -> JudgeRequest:
    """An open question's request in likelihood mode: a short answer generated at temperature 0, without a seed
    (every seed asks the same request, which the cache answers after the first)."""
    from dataclasses import replace

    return replace(request, seed=None, temperature=0.0, response_format=None, max_tokens=max_tokens)


def _likely(p: _Prepared, reply) -> Extraction:
    """The most probable shown option letter (likelihood scoring of a multiple-choice question)."""
    from capeval.judges.logprobs import best_choice

    letters = {LETTERS[i]: LETTERS[i] for i in range(len(p.shown))}
    verdict = best_choice(reply.logprobs, letters)
    if not verdict.ok:
        return Extraction(None, f"unparsable:likelihood ({verdict.error})")
    return Extraction(LETTERS.index(verdict.value), "likelihood")


def _is_likelihood(p: _Prepared) -> bool:
    return bool(p.request.top_logprobs)


def _extract(p: _Prepared, text: str | None) -> Extraction:
    if p.item.question.is_mc:
        return extract_choice(text, p.shown, p.cannot_shown)
    return extract_open(text)


def _retry_instruction(p: _Prepared) -> str:
    if p.item.question.is_mc:
        return f"Reply with only the letter of your answer ({', '.join(LETTERS[: len(p.shown)])})."
    return "Reply with only your final answer: a single word or a short phrase."


def ask(judge: Judge, items: Sequence[Item], seed: int, template: JudgeTemplate, settings: AskSettings,
        grader_template: JudgeTemplate | None = None) -> list[Graded]:
    """Ask every item's question through ``judge`` and grade the answers, in order."""
    prepared = [prepare(it, seed, template, settings) for it in items]
    replies = judge.run([p.request for p in prepared])
    texts: list[str | None] = [r.text if r.ok else None for r in replies]
    errors: list[str | None] = [None if r.ok else (r.error or "no reply") for r in replies]
    found = [(_likely(p, r) if _is_likelihood(p) else _extract(p, t)) if t is not None
             else Extraction(None, "unparsable:judge-error") for p, t, r in zip(prepared, texts, replies, strict=True)]

    if settings.retry:
        again = [i for i, (ex, t) in enumerate(zip(found, texts, strict=True))
                 if not ex.ok and t is not None and not _is_likelihood(prepared[i])]
        if again:
            follow = [retry_request(prepared[i].request, texts[i], _retry_instruction(prepared[i]))
                      for i in again]
            for i, reply in zip(again, judge.run(follow), strict=True):
                if reply.ok:
                    ex = _extract(prepared[i], reply.text)
                    if ex.ok:
                        found[i] = Extraction(ex.index, f"{ex.method}+retry", ex.answer)
                        texts[i] = f"{texts[i]}\n[retry] {reply.text}"

    records = [_grade(p, ex, t, err) for p, ex, t, err in zip(prepared, found, texts, errors, strict=True)]
    if settings.grader == "llm":
        _llm_grade(judge, prepared, records, seed, grader_template)
    return records


def _grade(p: _Prepared, ex: Extraction, text: str | None, error: str | None) -> Graded:
    q = p.item.question
    base = dict(qid=q.qid, image_id=q.image_id, category=q.category, split=q.split)
    reply = text if text is not None else f"[judge error] {error}"
    if not ex.ok:
        return Graded(score=float("nan"), method=ex.method, reply=reply, **base)
    reply = reply if len(reply) <= _REPLY_KEEP else reply[:_REPLY_KEEP] + "..."
    if q.is_mc:
        original = p.perm[ex.index]
        score, correct, cannot = score_choice(original, q.answer_index, len(q.options))
        return Graded(score=score, correct=correct, cannot=cannot, chosen=p.shown[ex.index], method=ex.method,
                      reply=reply, **base)
    correct = open_match(ex.answer, q.answers)
    return Graded(score=float(correct), correct=correct, chosen=ex.answer, method=f"{ex.method}-exact",
                  reply=reply, **base)


def _llm_grade(judge: Judge, prepared: list[_Prepared], records: list[Graded], seed: int,
               template: JudgeTemplate | None) -> None:
    """Second opinion of the judge on open answers that failed the exact match (in place)."""
    if template is None:
        raise ValueError("grader='llm' needs a grader template")
    todo = [i for i, (p, r) in enumerate(zip(prepared, records, strict=True))
            if not p.item.question.is_mc and r.parsed and not r.correct]
    if not todo:
        return
    fmt = json_schema_format("verdict", {"verdict": {"type": "string", "enum": list(_VERDICTS)}})
    requests = []
    for i in todo:
        q = prepared[i].item.question
        messages = template.messages(question=q.question, answers=list(q.answers), response=records[i].chosen)
        requests.append(JudgeRequest(messages=messages, seed=seed, temperature=0.0, response_format=fmt,
                                     template_hash=template.hash, tag=f"{q.qid}#grade"))
    replies = judge.run(requests)
    verdicts = [parse_choice(r.text, key="verdict", choices=_VERDICTS) for r in replies]
    bad = [k for k, v in enumerate(verdicts) if not v.ok and replies[k].ok]
    if bad:
        follow = [retry_request(requests[k], replies[k].text, 'Reply with {"verdict": "correct"} or '
                                '{"verdict": "incorrect"} only.') for k in bad]
        for k, reply in zip(bad, judge.run(follow), strict=True):
            verdicts[k] = parse_choice(reply.text, key="verdict", choices=_VERDICTS)
    for k, i in enumerate(todo):
        r = records[i]
        if verdicts[k].ok:
            r.correct = verdicts[k].value == "correct"
            r.score = float(r.correct)
            r.method = r.method.replace("-exact", "-llm")
        else:
            r.score = float("nan")
            r.method = f"unparsable:grader ({verdicts[k].error})"


def details_json(records: Sequence[Graded]) -> str:
    """One image's answered questions as a compact JSON list (for the run's details)."""
    rows: list[dict[str, Any]] = []
    for r in records:
        rows.append({"qid": r.qid, "score": None if not r.parsed else round(r.score, 6), "chosen": r.chosen,
                     "method": r.method, "reply": r.reply})
    return json.dumps(rows, ensure_ascii=False)
