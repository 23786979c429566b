"""LLM caption perturber for MM-SeR refinement training (Song et al.): a judge LLM makes one plausible mistake.

The optional alternative to :mod:`capeval.baselines.perturb`: each unique reference is sent once through
capeval's judge client (any OpenAI-compatible endpoint, its cache and retries) with the prompt
``judges/perturb-caption-v1.jinja``. A reply is accepted when it differs from the reference in at least one
and at most ``MAX_CHANGED_WORDS`` words (and at most half of them); anything else is counted as a failure and
the rule-based perturber is used for that caption instead.
"""

from __future__ import annotations

import difflib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from capeval.baselines.perturb import RulePerturber

log = logging.getLogger("capeval")

TEMPLATE = "perturb-caption-v1"
MAX_CHANGED_WORDS = 4


def clean_reply(text: str | None) -> str | None:
    """The caption in a reply: the first non-empty line, without a ``Caption:`` label or quotes."""
    if not text:
        return None
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        for label in ("rewritten caption:", "caption:"):
            if line.lower().startswith(label):
                line = line[len(label):].strip()
        return " ".join(line.strip("\"'`").split()) or None
    return None


def changed_words(original: str, edited: str) -> int:
    """How many words an edit replaced, inserted or deleted (case-insensitive)."""
    a, b = original.lower().split(), edited.lower().split()
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def accept(original: str, edited: str | None) -> bool:
    """True when ``edited`` is a usable one-mistake version of ``original``."""
    if not edited:
        return False
    n = changed_words(original, edited)
    return 1 <= n <= min(MAX_CHANGED_WORDS, max(1, len(original.split()) // 2))


@dataclass
class LLMPerturbations:
    """One LLM-made pseudo-initial caption per reference, and what failed."""

    edits: dict[str, str]
    failures: int = 0
    usage: dict = field(default_factory=dict)


def llm_perturb(captions: Sequence[str], options: dict, seed: int = 0) -> LLMPerturbations:
    """Ask the judge LLM (``options``: judge_model, judge_base_url, ... as for ``capeval score``) to change
    one element of each unique caption; failed or unusable replies are counted, not kept."""
    from capeval.judges import JudgeConfig, JudgeRequest, load_template, run_requests

    config = JudgeConfig.from_options(options, max_tokens=96, temperature=0.0)
    tmpl = load_template(config.template or TEMPLATE)
    unique = list(dict.fromkeys(captions))
    requests = [JudgeRequest(messages=tmpl.messages(caption=c), seed=seed, template_hash=tmpl.hash, tag=str(i))
                for i, c in enumerate(unique)]
    replies, usage = run_requests(requests, config)
    edits, failures = {}, 0
    for caption, reply in zip(unique, replies, strict=True):
        edited = clean_reply(reply.text) if reply.ok else None
        if accept(caption, edited):
            edits[caption] = edited
        else:
            failures += 1
    if failures:
        log.warning("LLM perturber: %d of %d captions got no usable edit; the rule-based perturber covers them",
                    failures, len(unique))
    return LLMPerturbations(edits, failures, dict(usage.as_usage()))


class MappedPerturber:
    """Pseudo-initial captions from a fixed map (LLM edits), falling back to the rule-based perturber."""

    name = "llm"

    def __init__(self, edits: dict[str, str], fallback: RulePerturber) -> None:
        self.edits, self.fallback = edits, fallback

    def __call__(self, caption: str, key: str | int = 0) -> str:
        """The LLM's edit of ``caption`` (kept unchanged with the fallback's ``keep`` share)."""
        if caption not in self.edits:
            return self.fallback(caption, key)
        rng = random.Random(f"{self.fallback.seed}|{key}|{caption}")
        return caption if rng.random() < self.fallback.keep else self.edits[caption]
