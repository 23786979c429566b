"""CapArena-style pairwise judging (Cheng et al., 2025): each caption vs a baseline captioner's, both orders.

For every image the judge compares the captioner's caption with the baseline captioner's caption, given the
reference description(s) (and the image when ``pairwise_image`` is on). Each pair is asked twice, once in
each order, to cancel position bias. Each order scores +1 (win), 0 (tie) or -1 (loss) for the captioner;
the per-image score is 100 x the mean over the two orders and the captioner's score the mean over images,
in [-100, 100] as in CapArena-Auto ((wins - losses) / judgments x 100). Win, tie and loss rates are stored
too. The baseline (``pairwise_baseline``, default the first captioner) is not compared with itself (NaN).
With ``--option judge_scoring=likelihood`` each order's verdict is the judge's probability of answering
"1", "2" or "0" (tie) as its first token; the pair's win, tie and loss rates are those probabilities
averaged over the two orders and its score 100 x (win - loss).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from capeval.errors import CapevalError
from capeval.judges.images import ImageResolver
from capeval.judges.logprobs import choice_probs
from capeval.judges.parsing import Verdict, json_schema_format, parse_choice
from capeval.judges.protocol import JudgeRequest
from capeval.judges.templates import JudgeTemplate
from capeval.metrics.base import Batch, MetricStatistics
from capeval.metrics.judge import Judged, JudgeMetric, schedule_mode

log = logging.getLogger("capeval")

WINNERS = ("Caption 1", "Caption 2", "Tie")
PAIR_FORMAT = json_schema_format(
    "caption_comparison", {"reason": {"type": "string"}, "winner": {"type": "string", "enum": list(WINNERS)}})
CHOICES = {
    "1": ("caption 1", "caption1", "caption_1", "first", "first caption", "caption 1 is better", "a"),
    "2": ("caption 2", "caption2", "caption_2", "second", "second caption", "caption 2 is better", "b"),
    "tie": ("tie", "equal", "draw", "both", "neither", "same"),
}
CHUNK = 256
VERDICT_TOKENS = {"1": "1", "2": "2", "0": "tie"}


def parse_winner(text: str | None) -> Verdict:
    """``"1"``, ``"2"`` or ``"tie"`` from the reply's ``winner``."""
    return parse_choice(text, key="winner", choices=CHOICES)


def order_outcome(label: str, candidate_first: bool) -> int:
    """+1 when the candidate won this order, -1 when it lost, 0 for a tie."""
    if label == "tie":
        return 0
    won = (label == "1") == candidate_first
    return 1 if won else -1


def pair_requests(template: JudgeTemplate, candidate: str, baseline: str, references: list[str],
                  image: str | None, seed: int | None, scoring: str = "generate",
                  group: str = "") -> list[JudgeRequest]:
    """The two requests of one pair: candidate shown first, then baseline shown first."""
    out = []
    for first, second in ((candidate, baseline), (baseline, candidate)):
        messages = template.messages(images=[image] if image else None, caption_1=first, caption_2=second,
                                     references=list(references), has_image=image is not None, scoring=scoring)
        out.append(JudgeRequest(messages=messages, seed=seed, response_format=PAIR_FORMAT,
                                template_hash=template.hash, group=group))
    return out


def read_verdicts(logprobs: object) -> Verdict:
    """``{"1": p, "2": p, "tie": p}`` from the first token's probabilities."""
    return choice_probs(logprobs, VERDICT_TOKENS)


def likelihood_pair_scores(forward: Judged, backward: Judged) -> tuple[float, float, float, float]:
    """(100 x (win - loss), win, tie, loss) with each order's verdict probabilities; NaNs when either failed."""
    if not (forward.ok and backward.ok):
        return (np.nan,) * 4
    f, b = forward.verdict.value, backward.verdict.value
    win = (f["1"] + b["2"]) / 2  # the candidate is caption 1 in the forward order, caption 2 backwards
    loss = (f["2"] + b["1"]) / 2
    tie = (f["tie"] + b["tie"]) / 2
    return 100.0 * (win - loss), win, tie, loss


def pair_scores(forward: Judged, backward: Judged) -> tuple[float, float, float, float]:
    """(score in [-100, 100], win, tie, loss rates) of one pair; NaNs when either order is unreadable."""
    if not (forward.ok and backward.ok):
        return (np.nan,) * 4
    outcomes = [order_outcome(forward.verdict.value, True), order_outcome(backward.verdict.value, False)]
    win, tie, loss = (outcomes.count(v) / 2 for v in (1, 0, -1))
    return 100.0 * float(np.mean(outcomes)), win, tie, loss


class Pairwise(JudgeMetric):
    """Pairwise comparison against a baseline captioner, both orders, score in [-100, 100] (``pairwise``)."""

    name = "pairwise"
    version = "1"
    description = "CapArena-style pairwise battles vs a baseline captioner, both orders; score in [-100, 100]"
    needs = frozenset({"references", "llm"})
    outputs = ("pairwise", "pairwise_win", "pairwise_tie", "pairwise_loss")
    display_names = {"pairwise": "Pairwise"}

    @classmethod
    def option_keys(cls) -> frozenset[str]:
        """The judge options, ``pairwise_baseline`` and ``pairwise_image``."""
        return super().option_keys() | {"pairwise_baseline", "pairwise_image"}
    default_template: ClassVar[str] = "pairwise-v2"
    config_defaults: ClassVar[dict[str, Any]] = {"max_tokens": 512}
    retry_instruction: ClassVar[str] = (
        'Reply again with only the JSON object, e.g. {"reason": "...", "winner": "Caption 1"}; "winner" is '
        'exactly "Caption 1", "Caption 2" or "Tie".')

    @property
    def use_image(self) -> bool:
        """Whether images are sent: ``pairwise_image=yes|no|auto`` (auto: when ``--images`` is given)."""
        mode = str(self.options.get("pairwise_image", "auto")).lower()
        if mode in ("auto", ""):
            return bool(self.options.get("images"))
        if mode in ("yes", "true", "1", "on"):
            return True
        if mode in ("no", "false", "0", "off"):
            return False
        raise CapevalError(f"pairwise_image must be yes, no or auto, got {mode!r}")

    def extra_signature(self) -> dict[str, Any]:
        """The baseline captioner, the orders and whether the judge sees the image."""
        baseline = self.options.get("pairwise_baseline") or getattr(self, "_first_captioner", None) or "first"
        return {"baseline": baseline, "orders": "both", "image": self.use_image}

    def setup(self, context: Any) -> None:
        """Open the judge; remember the run's first captioner (the default baseline, named in the signature)."""
        super().setup(context)
        dataset = getattr(context, "dataset", None)
        if dataset is not None and dataset.captioners:
            self._first_captioner = dataset.captioners[0]

    def _baseline(self, context: Any) -> str:
        names = list(context.dataset.captioners)
        chosen = self.options.get("pairwise_baseline")
        if chosen is None:
            return names[0]
        if str(chosen) not in names:
            raise CapevalError(f"pairwise_baseline {chosen!r} is not a captioner of this run "
                               f"({', '.join(names)})")
        return str(chosen)

    def prefetch(self, batches: Sequence[Batch], context: Any, seed: int = 0) -> int:
        """Send every compared captioner's two requests for one image back to back (see
        :meth:`JudgeMetric.prefetch`), CHUNK images at a time."""
        baseline = self._baseline(context)
        batches = [b for b in batches if b.captioner != baseline]
        if schedule_mode(self.options) == "captioner" or len(batches) < 2:
            return 0
        base_caps = context.dataset.candidates[baseline]
        images = None
        if self.use_image:
            if getattr(self, "_images", None) is None:
                self._images = ImageResolver(self.options.get("images"))
            images = self._images
        order = list(dict.fromkeys(sid for b in batches for sid in b.sample_ids if sid in base_caps))

        def requests_of(chunk: set[str]) -> list[JudgeRequest]:
            reqs: list[JudgeRequest] = []
            for b in batches:
                given = b.images or [None] * len(b)
                for i, sid in enumerate(b.sample_ids):
                    if sid in chunk:
                        image = images.data_url(sid, given[i]) if images is not None else None
                        reqs.extend(pair_requests(self.template, b.candidates[i], base_caps[sid],
                                                  b.references[i], image, seed, self.scoring, sid))
            return reqs

        return self.prefetch_in_chunks(order, requests_of, CHUNK)

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Compare each caption of the batch with the baseline's caption of the same image, both orders."""
        baseline = self._baseline(context)
        n = len(batch)
        values = {key: np.full(n, np.nan) for key in self.outputs}
        details: list[str | None] = [None] * n
        if batch.captioner == baseline:
            details = [f"baseline captioner {baseline!r}: not compared with itself"] * n
            return MetricStatistics.of_values(list(batch.sample_ids), values,
                                              failures={k: 0 for k in self.outputs}, details={"pairwise": details},
                                usage=self.take_usage())
        base_caps = context.dataset.candidates[baseline]
        images = None
        if self.use_image:
            if getattr(self, "_images", None) is None:
                self._images = ImageResolver(self.options.get("images"))  # encodings reused across seeds
            images = self._images
        given = batch.images or [None] * n
        todo = [i for i in range(n) if batch.sample_ids[i] in base_caps]
        missing = n - len(todo)
        if missing:
            log.warning("pairwise: baseline %r has no caption for %d of %r's samples; they are left out",
                        baseline, missing, batch.captioner)
            for i in range(n):
                if batch.sample_ids[i] not in base_caps:
                    details[i] = f"baseline {baseline!r} has no caption for this image"
        failures = 0
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            reqs: list[JudgeRequest] = []
            for i in chunk:
                sid = batch.sample_ids[i]
                image = images.data_url(sid, given[i]) if images is not None else None
                reqs.extend(pair_requests(self.template, batch.candidates[i], base_caps[sid],
                                          batch.references[i], image, seed, self.scoring, sid))
            likelihood = self.scoring == "likelihood"
            judged = self.ask_likelihood(reqs, read_verdicts) if likelihood else self.ask(reqs, parse_winner)
            scorer = likelihood_pair_scores if likelihood else pair_scores
            for k, i in enumerate(chunk):
                fwd, bwd = judged[2 * k], judged[2 * k + 1]
                for key, v in zip(self.outputs, scorer(fwd, bwd), strict=True):
                    values[key][i] = v
                if np.isnan(values["pairwise"][i]):
                    failures += 1
                details[i] = _pair_detail(fwd, bwd)
        return MetricStatistics.of_values(list(batch.sample_ids), values,
                                          failures={k: failures for k in self.outputs},
                            details={"pairwise": details}, usage=self.take_usage())


def _one(j: Judged, candidate_first: bool) -> str:
    if not j.ok:
        return f"[unparsed: {j.error}] {j.text or ''}".strip()
    if isinstance(j.verdict.value, dict):
        p = j.verdict.value
        win, loss = (p["1"], p["2"]) if candidate_first else (p["2"], p["1"])
        return f"p(win)={win:.3g} p(tie)={p['tie']:.3g} p(loss)={loss:.3g}"
    outcome = {1: "win", 0: "tie", -1: "loss"}[order_outcome(j.verdict.value, candidate_first)]
    return f"{outcome}: {j.verdict.reason or ''}".strip()


def _pair_detail(fwd: Judged, bwd: Judged) -> str:
    return f"candidate first -> {_one(fwd, True)} | baseline first -> {_one(bwd, False)}"
