"""Likelihood scoring of judge replies from the endpoint's ``logprobs`` / ``top_logprobs``.

* Ratings (CLAIR, MLLM-as-a-Judge): the judge answers the score as one token; the score is the expected
  value over the score tokens' probabilities, renormalised over the score tokens among the first token's
  alternatives (G-Eval, Liu et al., EMNLP 2023).
* Choices (proxy-QA option letters, pairwise verdicts): the probability of each valid answer token at the
  first position, renormalised; the answer is the most probable valid one (lm-evaluation-harness' way of
  scoring multiple choice by likelihood instead of parsing generated text).

Token texts are compared after stripping whitespace (``" 7"`` and ``"7"`` are the same answer; their
probabilities add up). A reply without logprobs, with malformed ones, or with no valid answer token among
the alternatives is a failure with a reason, never a score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capeval.judges.parsing import Verdict

DIGITS = {str(d): float(d) for d in range(10)}
TOP_LOGPROBS = 20  # the most OpenAI's API returns; llama.cpp returns as many


@dataclass(frozen=True)
class TokenDistribution:
    """The first answer token's alternatives: stripped token text -> probability (summed over spellings)."""

    probs: dict[str, float]

    def mass(self, tokens: Mapping[str, Any]) -> float:
        """Total probability of the given answer tokens."""
        return sum(p for t, p in self.probs.items() if t in tokens)


def first_token(logprobs: Any) -> TokenDistribution | str:
    """The distribution of the reply's first token from ``choices[0].logprobs.content``, or why it can't be read.

    Example:
        >>> d = first_token([{"token": "7", "logprob": -0.1,
        ...                   "top_logprobs": [{"token": "7", "logprob": -0.1}, {"token": " 7", "logprob": -3.0}]}])
        >>> round(d.probs["7"], 4)
        0.9546
    """
    if logprobs is None:
        return "the reply carries no logprobs"
    if not isinstance(logprobs, list) or not logprobs or not isinstance(logprobs[0], dict):
        return "malformed logprobs (expected a list of token entries)"
    head = logprobs[0]
    tops = head.get("top_logprobs")
    if not isinstance(tops, list) or not tops:
        tops = [head]  # top_logprobs not given: only the chosen token is known
    probs: dict[str, float] = {}
    for entry in tops:
        token, lp = (entry.get("token"), entry.get("logprob")) if isinstance(entry, dict) else (None, None)
        if not isinstance(token, str) or isinstance(lp, bool) or not isinstance(lp, (int, float)) \
                or math.isnan(lp) or lp > 1e-6:
            return f"malformed logprobs entry {entry!r}"
        key = token.strip()
        if key:
            probs[key] = probs.get(key, 0.0) + math.exp(lp)
    return TokenDistribution(probs)


def _answer_mass(logprobs: Any, tokens: Mapping[str, Any], what: str) -> tuple[Any, float, str | None]:
    """The first token's distribution, its probability mass on ``tokens``, and the error when there is none."""
    dist = first_token(logprobs)
    if isinstance(dist, str):
        return None, 0.0, dist
    mass = dist.mass(tokens)
    if mass <= 0:
        shown = ", ".join(sorted(dist.probs, key=dist.probs.get, reverse=True)[:5]) or "none"
        return dist, mass, f"no {what} ({', '.join(tokens)}) among the first token's alternatives (top: {shown})"
    return dist, mass, None


def expected_score(logprobs: Any, values: Mapping[str, float] = DIGITS) -> Verdict:
    """G-Eval's score: sum over score tokens of p(token) x value / sum of p(token).

    ``values`` maps answer tokens to scores (default the digits 0-9). The verdict's ``reason`` records the
    probability mass the score tokens had (low mass = the judge mostly wanted to say something else).

    Example:
        >>> import math
        >>> lp = [{"token": "8", "logprob": math.log(0.6), "top_logprobs": [
        ...     {"token": "8", "logprob": math.log(0.6)}, {"token": "3", "logprob": math.log(0.2)},
        ...     {"token": "The", "logprob": math.log(0.1)}]}]
        >>> v = expected_score(lp)
        >>> round(v.value, 6), v.reason
        (6.75, 'likelihood: E[score]=6.75 from p(score tokens)=0.8')
    """
    dist, mass, error = _answer_mass(logprobs, values, "score token")
    if error:
        return Verdict(None, error=error)
    value = sum(p * values[t] for t, p in dist.probs.items() if t in values) / mass
    return Verdict(value, f"likelihood: E[score]={value:.3g} from p(score tokens)={mass:.3g}", "likelihood")


def choice_probs(logprobs: Any, choices: Mapping[str, str]) -> Verdict:
    """The renormalised probability of each choice: ``choices`` maps answer tokens to labels.

    ``value`` is ``{label: probability}`` (summing to 1 over the labels that appear; 0 for the others).

    Example:
        >>> import math
        >>> lp = [{"token": "1", "logprob": math.log(0.5), "top_logprobs": [
        ...     {"token": "1", "logprob": math.log(0.5)}, {"token": "2", "logprob": math.log(0.25)},
        ...     {"token": "0", "logprob": math.log(0.25)}]}]
        >>> choice_probs(lp, {"1": "1", "2": "2", "0": "tie"}).value
        {'1': 0.5, '2': 0.25, 'tie': 0.25}
    """
    dist, mass, error = _answer_mass(logprobs, choices, "valid answer")
    if error:
        return Verdict(None, error=error)
    out = {label: 0.0 for label in dict.fromkeys(choices.values())}
    for token, p in dist.probs.items():
        if token in choices:
            out[choices[token]] += p / mass
    return Verdict(out, f"likelihood: p(valid answers)={mass:.3g}", "likelihood")


def best_choice(logprobs: Any, choices: Mapping[str, str]) -> Verdict:
    """The most probable valid choice (ties: the first in ``choices`` order), with its probability.

    Example:
        >>> import math
        >>> lp = [{"token": " B", "logprob": math.log(0.3), "top_logprobs": [
        ...     {"token": "The", "logprob": math.log(0.5)}, {"token": " B", "logprob": math.log(0.3)},
        ...     {"token": "A", "logprob": math.log(0.1)}]}]
        >>> best_choice(lp, {"A": "A", "B": "B", "C": "C"}).value
        'B'
    """
    probs = choice_probs(logprobs, choices)
    if not probs.ok:
        return probs
    label = max(probs.value, key=lambda k: probs.value[k])
    return Verdict(label, f"likelihood: p({label})={probs.value[label]:.3g} of the valid answers", "likelihood")
