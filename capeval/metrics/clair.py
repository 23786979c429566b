"""CLAIR (Chan et al., EMNLP 2023): an LLM rates 0-100 how likely candidate and references describe one image.

Following the paper and its reference code: the candidate set and the reference set are listed one caption
per line, the LLM answers JSON ``{"score", "reason"}``; a reply that is not JSON is read by CLAIR's fallback
(a labelled number, else the first number in the reply, a number below 1 taken as a fraction of 100). The
score is reported on 0-1 (score / 100). Unlike the reference code, which returns 0 for an unreadable reply,
capeval sends one follow-up asking for the JSON only and then records NaN with the raw reply, counted in
the run's failures and left out of the mean.

With ``--option judge_scoring=likelihood`` the judge answers one digit 0-9 (``clair-v2``'s likelihood form)
and the score is the expected digit under the first token's probabilities / 9 (G-Eval's weighting), on 0-1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from capeval.judges.logprobs import expected_score
from capeval.judges.parsing import Verdict, json_schema_format, parse_score
from capeval.judges.protocol import JudgeRequest
from capeval.judges.templates import JudgeTemplate
from capeval.metrics.base import Batch, MetricStatistics
from capeval.metrics.judge import Judged, JudgeMetric, detail_text

CLAIR_FORMAT = json_schema_format("clair", {"score": {"type": "number"}, "reason": {"type": "string"}})


LIKELIHOOD_MAX = 9.0  # the likelihood form answers a digit 0-9


def clair_requests(template: JudgeTemplate, candidates: list[str], references: list[list[str]],
                   seed: int | None, scoring: str = "generate",
                   groups: list[str] | None = None) -> list[JudgeRequest]:
    """One request per sample: the candidate caption as a one-element candidate set against its references.

    ``groups`` (e.g. the sample ids' images) let the client send requests sharing a prompt prefix together.
    """
    groups = groups or [""] * len(candidates)
    return [
        JudgeRequest(messages=template.messages(candidates=[cand], references=list(refs), scoring=scoring),
                     seed=seed, response_format=CLAIR_FORMAT, template_hash=template.hash, group=group)
        for cand, refs, group in zip(candidates, references, groups, strict=True)
    ]


def reference_groups(references: list[list[str]]) -> list[str]:
    """A group name per sample: samples with the same references share CLAIR's prompt prefix."""
    return ["\x1f".join(refs) for refs in references]


def clair_likelihood_values(judged: list[Judged]) -> np.ndarray:
    """Per-sample likelihood CLAIR on 0-1: E[digit] / 9 (NaN where the logprobs could not be read)."""
    return np.array([j.verdict.value / LIKELIHOOD_MAX if j.ok else np.nan for j in judged], dtype=float)


def parse_clair(text: str | None) -> Verdict:
    """CLAIR's reading of a reply: JSON ``score`` first, then its number fallbacks; 0-100 or a failure."""
    return parse_score(text, key="score", lo=0.0, hi=100.0, first_number=True, fraction_scale=True)


def clair_values(judged: list[Judged]) -> np.ndarray:
    """Per-sample CLAIR on 0-1 (NaN where the reply could not be read)."""
    return np.array([j.verdict.value / 100.0 if j.ok else np.nan for j in judged], dtype=float)


class Clair(JudgeMetric):
    """CLAIR: text-only LLM judgment of candidate vs references, 0-1 (registered as ``clair``)."""

    name = "clair"
    version = "2"  # 2: judge replies read with sign, decimals, fractions, percentages (issue 12)
    description = "CLAIR (Chan et al., 2023): an LLM rates 0-100 if candidate and references match one image"
    needs = frozenset({"references", "llm"})
    outputs = ("clair",)
    scale = 100.0
    display_names = {"clair": "CLAIR"}
    default_template: ClassVar[str] = "clair-v2"
    config_defaults: ClassVar[dict[str, Any]] = {"max_tokens": 256}
    retry_instruction: ClassVar[str] = (
        'Reply again with only a JSON object such as {"score": 50, "reason": "..."}: "score" is a number '
        "from 0 to 100 and \"reason\" is a short string.")

    def judge_requests(self, batch: Batch, context: Any, seed: int) -> list[JudgeRequest]:
        """One request per candidate; an image's requests (same references) share a prefix group."""
        return clair_requests(self.template, batch.candidates, batch.references, seed, self.scoring,
                              reference_groups(batch.references))

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Judge every candidate of the batch with this seed."""
        requests = self.judge_requests(batch, context, seed)
        if self.scoring == "likelihood":
            judged = self.ask_likelihood(requests, expected_score)
            values = clair_likelihood_values(judged)
        else:
            judged = self.ask(requests, parse_clair)
            values = clair_values(judged)
        failures = int(np.isnan(values).sum())
        return MetricStatistics.of_values(
            list(batch.sample_ids), {"clair": values},
            failures={"clair": failures},
            details={"clair": [detail_text(j) for j in judged]},
            usage=self.take_usage(),
        )
