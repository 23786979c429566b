"""``proxy_qa``: caption-as-proxy question answering (CaptionQA, Yang et al. 2025; MetaCaptioner).

An LLM that never sees the image answers each image's questions from the candidate caption alone; the
captioner's score is CaptionQA's question score (1 correct, 0 wrong, 1/K + 0.05 for "Cannot answer from the
caption" when that option is on), which is plain accuracy when it is off.

Outputs (one row each in summary.json, mean±std over seeds):

* ``proxy_qa`` — the score over all answered questions (question-weighted, as CaptionQA averages);
  per sample: the mean over that image's answered questions;
* ``proxy_qa_acc``, ``proxy_qa_cannot`` — accuracy and the "cannot" ratio (only with the unanswerable option);
* ``proxy_qa.cat.<category>``, ``proxy_qa.split.<split>`` — the score per category and per split/domain
  (the category slug is the lower-cased name with non-alphanumerics as ``_``); CaptionQA's "Overall" column
  is the mean of its four domain scores, i.e. the mean of the ``proxy_qa.split.*`` outputs;
* with ``with_image``: ``proxy_qa_image`` — the same questions answered by a vision-language model that sees
  the image; ``proxy_qa_utility`` — caption score / image score (the caption's utility ratio);
  ``proxy_qa_gap`` — image score - caption score (the gap of CaptionQA's Table 4).

Open (short-answer) questions never get the "cannot" option; they score 1 or 0. Unparsable replies are NaN,
left out of every mean and counted in ``failures`` (never scored 0). Options
(``--option KEY=VALUE``): ``proxy_qa_questions`` (path or shipped set name, required),
``proxy_qa_unanswerable`` (bool, default no), ``proxy_qa_grader`` (exact|llm, default exact),
``proxy_qa_shuffle`` (default yes), ``proxy_qa_retry`` (one follow-up for an unreadable reply, default yes),
``with_image`` (default no), ``proxy_qa_image_model`` / ``proxy_qa_image_base_url`` (the VLM; default the
judge), ``proxy_qa_template``, ``proxy_qa_grader_template``, ``images`` (folder of ``<image_id>.*`` files),
plus the ``judge_*`` options of :class:`capeval.judges.JudgeConfig`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from capeval.errors import CapevalError, InputError
from capeval.metrics.base import Batch, Metric, MetricStatistics
from capeval.metrics.judge import JudgeMetric
from capeval.options import parse_bool
from capeval.proxyqa.scoring import Graded, per_image

log = logging.getLogger("capeval")

TEMPLATE = "proxy-qa-v1"
GRADER_TEMPLATE = "proxy-qa-grader-v1"


def _flag(value: Any, default: bool) -> bool:
    return default if value is None or value == "" else parse_bool(value)


def slug(name: str) -> str:
    """An output-key-safe form of a category or split name.

    Example:
        >>> slug("Object Existence / Count")
        'object_existence_count'
    """
    return re.sub(r"[^a-z0-9]+", "_", name.casefold()).strip("_") or "none"


def _slug_map(names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        s, k = slug(name), 2
        base = s
        while s in used:
            s, k = f"{base}_{k}", k + 1
        used.add(s)
        out[name] = s
    return out


PROXY_QA_KEYS = frozenset({
    "proxy_qa_questions", "proxy_qa_unanswerable", "proxy_qa_shuffle", "proxy_qa_grader", "proxy_qa_retry",
    "with_image", "proxy_qa_with_image", "proxy_qa_template", "proxy_qa_grader_template", "proxy_qa_image_model",
    "proxy_qa_image_base_url",
})

class ProxyQA(JudgeMetric):
    """Caption-as-proxy QA accuracy (see the module docstring)."""

    name: ClassVar[str] = "proxy_qa"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "an LLM answers the image's questions from the caption alone (CaptionQA)"
    needs: ClassVar[frozenset[str]] = frozenset({"llm"})
    outputs: ClassVar[tuple[str, ...]] = ("proxy_qa",)
    stochastic: ClassVar[bool] = True
    aggregation: ClassVar[str] = "ratio"
    display_names: ClassVar[dict[str, str]] = {"proxy_qa": "Proxy-QA"}
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        from capeval.judges import JudgeConfig, load_template
        from capeval.metrics.judge import scoring_mode
        from capeval.proxyqa.answer import AskSettings
        from capeval.proxyqa.questions import load_questions

        Metric.__init__(self, **options)
        self.judge = None
        source = options.get("proxy_qa_questions")
        if not source:
            raise CapevalError("proxy_qa needs a question set: --option proxy_qa_questions=PATH (VLMEvalKit "
                               ".tsv, CaptionQA .json or .jsonl) or a shipped set name such as 'thumb'")
        self.image_dir = options.get("images")
        self.questions = load_questions(str(source), images_dir=self.image_dir)
        self.settings = AskSettings(
            unanswerable=_flag(options.get("proxy_qa_unanswerable"), False),
            shuffle=_flag(options.get("proxy_qa_shuffle"), True),
            grader=str(options.get("proxy_qa_grader") or "exact"),
            retry=_flag(options.get("proxy_qa_retry"), True),
            scoring=scoring_mode(options),
        )
        self.with_image = _flag(options.get("with_image", options.get("proxy_qa_with_image")), False)
        self.config = JudgeConfig.from_options(options)
        if self.settings.scoring == "likelihood":
            from dataclasses import replace

            from capeval.proxyqa.answer import OPEN_ANSWER_TOKENS

            self.settings = replace(self.settings, open_tokens=min(OPEN_ANSWER_TOKENS, self.config.max_tokens))
        self.template = load_template(options.get("proxy_qa_template") or self.config.template or TEMPLATE)
        self.grader_template = load_template(options.get("proxy_qa_grader_template") or GRADER_TEMPLATE) \
            if self.settings.grader == "llm" else None
        self.image_config = None
        if self.with_image:
            changes = {k: options[o] for k, o in (("model", "proxy_qa_image_model"),
                                                  ("base_url", "proxy_qa_image_base_url")) if options.get(o)}
            self.image_config = self.config.replace(**changes)
        self.category_keys = _slug_map(self.questions.categories())
        self.split_keys = _slug_map(self.questions.splits())
        keys = ["proxy_qa"]
        if self.settings.unanswerable:
            keys += ["proxy_qa_acc", "proxy_qa_cannot"]
        keys += [f"proxy_qa.cat.{s}" for s in self.category_keys.values()]
        keys += [f"proxy_qa.split.{s}" for s in self.split_keys.values()]
        if self.with_image:
            keys += ["proxy_qa_image", "proxy_qa_utility", "proxy_qa_gap"]
        self.outputs = tuple(keys)  # type: ignore[misc]  # per instance: depends on the question set
        self._judge = None
        self._image_judge = None
        self._image_records: dict[tuple[int, str], Graded] = {}
        self._reported: set[str] = set()

    @classmethod
    def option_keys(cls) -> frozenset[str]:
        """The judge options and proxy QA's own."""
        return super().option_keys() | PROXY_QA_KEYS

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ProxyQA:
        """Build from the run options (see the module docstring)."""
        return cls(**options)

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        """Judge, prompt, question set (name, hash, size) and the protocol switches."""
        from capeval.metrics.judge import judge_signature

        qs = self.questions
        judge = judge_signature(self.config, self.template, self.options.get("seeds"), self.settings.scoring)
        params: dict[str, Any] = {
            "judge": judge.pop("judge"),
            "prompt": judge.pop("prompt"),
            "questions": f"{qs.name}@{qs.sha256[:8]}",
            "nq": len(qs),
            "unans": self.settings.unanswerable,
            "shuffle": self.settings.shuffle,
            "grader": "exact" if self.grader_template is None else f"llm:{self.grader_template.name}",
            "temp": judge.pop("temp"),
            "retry": self.settings.retry,
            **judge,
        }
        if self.settings.scoring != "generate":
            params["scoring"] = self.settings.scoring
            params["open_tokens"] = self.settings.open_tokens
        if self.with_image:
            params["image_judge"] = self.image_config.model
        return params

    def setup(self, context: Any) -> None:
        """Open the judge client(s) and their cache."""
        from capeval.judges import Judge

        self._judge = Judge(self.config)
        if self.with_image:
            self._image_judge = Judge(self.image_config)
            self._image_records = {}

    def close(self) -> None:
        """Close the judge clients."""
        for judge in (self._judge, self._image_judge):
            if judge is not None:
                judge.close()
        self._judge = self._image_judge = None

    # ------------------------------------------------------------------------------------------------ scoring

    def _image_of(self, q, batch_images: dict[str, str | None]) -> list[str]:
        """The question's image as data URLs: from the question file, the caption files or ``images``."""
        from capeval.judges import image_data_url

        refs = [r for r in q.images if r.startswith(("data:", "http://", "https://")) or Path(r).is_file()]
        given = batch_images.get(q.image_id)
        if not refs and given:
            path = Path(str(given))
            if not path.is_absolute() and self.image_dir:
                path = Path(self.image_dir) / path
            refs = [str(path)] if path.is_file() else []
        if not refs and self.image_dir:
            hits = sorted(Path(self.image_dir).glob(f"{q.image_id}.*"))
            refs = [str(hits[0])] if hits else []
        if not refs:
            raise InputError("with_image: no image file for this image id (give --images DIR holding "
                             "<image_id>.jpg or the files the captions name, or images in the question file)",
                             path=self.questions.path, sample_id=q.image_id)
        return [r if r.startswith(("data:", "http://", "https://")) else image_data_url(r) for r in refs]

    def _ask(self, judge, items, seed):
        from capeval.proxyqa.answer import ask

        return ask(judge, items, seed, self.template, self.settings, self.grader_template)

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Ask every question of every image in the batch from that image's caption: per image, points over
        answered questions of each output (the ratio rule's statistics)."""
        from capeval.proxyqa.answer import Item, details_json

        if self._judge is None:
            self.setup(context)
        ids = list(batch.sample_ids)
        caption_of = dict(zip(ids, batch.candidates, strict=True))
        items = [Item(q, caption_of[i]) for i in ids for q in self.questions.by_image.get(i, [])]
        if batch.captioner not in self._reported:
            self._reported.add(batch.captioner)
            without = sum(1 for i in ids if i not in self.questions.by_image)
            if without:
                log.warning("proxy_qa: %d of %d images of captioner %r have no questions in %s (score NaN)",
                            without, len(ids), batch.captioner, self.questions.path)
            uncovered = len(self.questions) - len(items)
            if uncovered:
                log.info("proxy_qa: %d of %d questions are about images captioner %r did not caption; "
                         "not asked", uncovered, len(self.questions), batch.captioner)
        records = self._ask(self._judge, items, seed)
        usage = self._judge.take_usage().as_usage()

        per_sample: dict[str, np.ndarray] = {}
        columns: dict[str, np.ndarray] = {}
        failures: dict[str, int] = {}
        position = {sid: k for k, sid in enumerate(ids)}

        def put(key: str, recs: list[Graded], value: str = "score") -> None:
            # statistics of the ratio rule: per image, points (num) over answered questions (den)
            num, den = np.zeros(len(ids)), np.zeros(len(ids))
            for r in recs:
                if r.parsed and r.image_id in position:
                    k = position[r.image_id]
                    num[k] += r.score if value == "score" else float(getattr(r, value))
                    den[k] += 1.0
            columns[f"{key}__num"], columns[f"{key}__den"] = num, den
            failures[key] = sum(1 for r in recs if not r.parsed)
            if value == "score":
                per_sample[key] = per_image(recs, ids)
            else:
                proxy = [Graded(r.qid, r.image_id, float(getattr(r, value)) if r.parsed else float("nan"))
                         for r in recs]
                per_sample[key] = per_image(proxy, ids)

        put("proxy_qa", records)
        if self.settings.unanswerable:
            put("proxy_qa_acc", records, "correct")
            put("proxy_qa_cannot", records, "cannot")
        for name, s in self.category_keys.items():
            put(f"proxy_qa.cat.{s}", [r for r in records if r.category == name])
        for name, s in self.split_keys.items():
            put(f"proxy_qa.split.{s}", [r for r in records if r.split == name])

        if self.with_image:
            image_records = self._image_answers(items, dict(zip(ids, batch.images or [None] * len(ids),
                                                                 strict=True)), seed)
            for k, v in self._image_judge.take_usage().as_usage().items():
                usage[f"image_{k}"] = v
            put("proxy_qa_image", image_records)
            cap_s, img_s = per_sample["proxy_qa"], per_sample["proxy_qa_image"]
            with np.errstate(divide="ignore", invalid="ignore"):
                per_sample["proxy_qa_utility"] = np.where(img_s > 0, cap_s / np.where(img_s > 0, img_s, 1),
                                                          np.nan)
            per_sample["proxy_qa_gap"] = img_s - cap_s
            failures["proxy_qa_utility"] = failures["proxy_qa_gap"] = 0

        by_image: dict[str, list[Graded]] = {}
        for r in records:
            by_image.setdefault(r.image_id, []).append(r)
        details = {"proxy_qa": [details_json(by_image[i]) if i in by_image else None for i in ids]}
        return MetricStatistics(ids, pd.DataFrame(columns), per_sample,
                                failures={k: v for k, v in failures.items() if v}, details=details, usage=usage)

    def _image_answers(self, items, batch_images: dict[str, str | None], seed: int) -> list[Graded]:
        """The with-image answers to the batch's questions (asked once per seed for all captioners)."""
        from capeval.proxyqa.answer import Item

        todo = [it.question for it in items if (seed, it.question.qid) not in self._image_records]
        if todo:
            asked = [Item(q, None, self._image_of(q, batch_images)) for q in todo]
            for q, rec in zip(todo, self._ask(self._image_judge, asked, seed), strict=True):
                self._image_records[(seed, q.qid)] = rec
        return [self._image_records[(seed, it.question.qid)] for it in items]
