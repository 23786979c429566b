"""MLLM-as-a-Judge scoring (Chen et al., ICML 2024; MM-SeR's GPT score): a VLM grades image + caption 1-5.

The judge sees the image (sent as a data URL) and the caption and grades accuracy, completeness,
hallucination (5 = nothing invented) and detail, plus an overall 1-5 score, the headline ``mllm_judge``.
Images come from ``--images DIR`` or from paths/URLs in the input. Unreadable replies get one follow-up
and then NaN, counted as failures. With ``--option judge_scoring=likelihood`` the judge answers the overall
score as one digit 1-5 and ``mllm_judge`` is its expected value under the first token's probabilities
(G-Eval); the four criteria are not asked in that mode (only the ``mllm_judge`` output exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from capeval.judges.images import ImageResolver
from capeval.judges.logprobs import expected_score
from capeval.judges.parsing import Verdict, json_schema_format, parse_score
from capeval.judges.protocol import JudgeRequest
from capeval.judges.templates import JudgeTemplate
from capeval.metrics.base import Batch, MetricStatistics
from capeval.metrics.judge import Judged, JudgeMetric, detail_text, schedule_mode

CRITERIA = ("accuracy", "completeness", "hallucination", "detail")
SCALE = (1.0, 5.0)
MLLM_FORMAT = json_schema_format(
    "caption_grade",
    {"reason": {"type": "string"}, **{c: {"type": "integer"} for c in CRITERIA},
     "score": {"type": "integer"}},
)
CHUNK = 256
SCORE_TOKENS = {str(d): float(d) for d in range(1, 6)}


def mllm_requests(template: JudgeTemplate, candidates: list[str], references: list[list[str]],
                  images: list[str], seed: int | None, scoring: str = "generate",
                  groups: list[str] | None = None) -> list[JudgeRequest]:
    """One request per sample: the rubric, the image (a data URL) and the caption."""
    groups = groups or [""] * len(candidates)
    return [
        JudgeRequest(messages=template.messages(images=[img], candidate=cand, references=list(refs),
                                                scoring=scoring),
                     seed=seed, response_format=MLLM_FORMAT, template_hash=template.hash, group=group)
        for cand, refs, img, group in zip(candidates, references, images, groups, strict=True)
    ]


def read_likelihood(logprobs: object) -> Verdict:
    """The expected overall score 1-5 from the first token's probabilities, as ``{"score": value}``."""
    v = expected_score(logprobs, SCORE_TOKENS)
    return Verdict({"score": v.value}, v.reason, v.method) if v.ok else v


def parse_mllm(text: str | None) -> Verdict:
    """The overall score (required) and each criterion (NaN when missing), all on 1-5."""
    overall = parse_score(text, key="score", lo=SCALE[0], hi=SCALE[1], labels=("score", "overall", "rating"))
    if not overall.ok:
        return overall
    values: dict[str, float] = {"score": overall.value}
    for crit in CRITERIA:
        v = parse_score(text, key=crit, lo=SCALE[0], hi=SCALE[1], labels=(crit,))
        values[crit] = v.value if v.ok else float("nan")
    return Verdict(values, overall.reason, overall.method)


class MLLMJudge(JudgeMetric):
    """A vision-language judge grades each caption 1-5 (registered as ``mllm_judge``)."""

    name = "mllm_judge"
    version = "2"  # 2: judge replies read with sign, decimals, fractions, percentages (issue 12)
    description = "MLLM-as-a-Judge (Chen et al., 2024): a VLM sees the image and grades the caption 1-5"
    needs = frozenset({"images", "llm"})
    outputs = ("mllm_judge", *(f"mllm_judge_{c}" for c in CRITERIA))
    display_names = {"mllm_judge": "MLLM-Judge"}
    default_template: ClassVar[str] = "mllm-judge-v2"
    config_defaults: ClassVar[dict[str, Any]] = {"max_tokens": 512}
    retry_instruction: ClassVar[str] = (
        'Reply again with only the JSON object, e.g. {"reason": "...", "accuracy": 3, "completeness": 3, '
        '"hallucination": 3, "detail": 3, "score": 3}, every grade an integer from 1 to 5.')

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.scoring == "likelihood":
            self.outputs = ("mllm_judge",)  # type: ignore[misc]  # the criteria are not asked

    def extra_signature(self) -> dict[str, Any]:
        """The grading scale."""
        return {"scale": "1-5"}

    def setup(self, context: Any) -> None:
        """Open the judge and the image lookup."""
        super().setup(context)
        self.images = ImageResolver(self.options.get("images"))

    def prefetch(self, batches: Sequence[Batch], context: Any, seed: int = 0) -> int:
        """Send every captioner's requests for one image back to back (see :meth:`JudgeMetric.prefetch`),
        CHUNK images at a time so that only one chunk's encoded images are held at once."""
        if schedule_mode(self.options) == "captioner" or len(batches) < 2:
            return 0
        if not hasattr(self, "images"):
            self.images = ImageResolver(self.options.get("images"))
        order = list(dict.fromkeys(sid for batch in batches for sid in batch.sample_ids))

        def requests_of(chunk: set[str]) -> list[JudgeRequest]:
            reqs: list[JudgeRequest] = []
            for batch in batches:
                given = batch.images or [None] * len(batch)
                picked = [k for k, sid in enumerate(batch.sample_ids) if sid in chunk]
                urls = [self.images.data_url(batch.sample_ids[k], given[k]) for k in picked]
                reqs.extend(mllm_requests(self.template, [batch.candidates[k] for k in picked],
                                          [batch.references[k] for k in picked], urls, seed, self.scoring, urls))
            return reqs

        return self.prefetch_in_chunks(order, requests_of, CHUNK)

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Grade every caption of the batch with this seed."""
        if not hasattr(self, "images"):
            self.images = ImageResolver(self.options.get("images"))
        given = batch.images or [None] * len(batch)
        judged: list[Judged] = []
        for start in range(0, len(batch), CHUNK):
            stop = min(start + CHUNK, len(batch))
            urls = [self.images.data_url(sid, img) for sid, img in
                    zip(batch.sample_ids[start:stop], given[start:stop], strict=True)]
            reqs = mllm_requests(self.template, batch.candidates[start:stop], batch.references[start:stop],
                                 urls, seed, self.scoring, urls)
            if self.scoring == "likelihood":
                judged.extend(self.ask_likelihood(reqs, read_likelihood))
            else:
                judged.extend(self.ask(reqs, parse_mllm))
        per_sample: dict[str, np.ndarray] = {}
        per_sample["mllm_judge"] = np.array([j.verdict.value["score"] if j.ok else np.nan for j in judged])
        for crit in CRITERIA if self.scoring == "generate" else ():
            per_sample[f"mllm_judge_{crit}"] = np.array(
                [j.verdict.value[crit] if j.ok else np.nan for j in judged], dtype=float)
        failures = {key: int(np.isnan(values).sum()) for key, values in per_sample.items()}
        return MetricStatistics.of_values(list(batch.sample_ids), per_sample, failures=failures,
                            details={"mllm_judge": [detail_text(j) for j in judged]}, usage=self.take_usage())
