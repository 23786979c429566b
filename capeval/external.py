"""Other tools' own scores beside capeval's: lmms-eval's results json and VLMEvalKit's ``*_score.json``.

For every metric a tool reported, ``summary.json`` gets (under ``external.<captioner>.metrics.<metric>``) the
tool's number, capeval's (and on the tool's scale), their difference, the number capeval computes *the tool's
way* (``tool_way``), whether that reproduces the tool's number (``explained``), and the known reason:

* lmms-eval scores with pycocoevalcap on PTB-tokenised captions, on capeval's 0-1 scale: the same pipeline, so
  the numbers agree unless the inputs differ (capeval normalises whitespace before tokenising).
* VLMEvalKit multiplies by 100 and runs pycocoevalcap's BLEU, ROUGE-L and CIDEr-D on untokenised captions (no
  PTB tokenizer: case and punctuation stay attached, ``"elephant."`` is not ``"elephant"``); it has no METEOR.
  ``tool_way`` reruns those scorers on the file's untokenised captions.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import TYPE_CHECKING, Any

from capeval.io.detect import ToolFile

if TYPE_CHECKING:
    from capeval.api import Results

AGREE = 1e-9  # relative tolerance (of the tool's scale) under which two numbers are the same

_UNTOKENISED = "x100; no PTB tokenizer: case and punctuation stay attached ('elephant.' is not 'elephant')"
REASONS = {
    "lmms-eval": {"*": ("same pipeline as capeval (pycocoevalcap 1.2 on PTB-tokenised captions, 0-1 scale): a "
                        "difference means other inputs (capeval normalises whitespace before tokenising; the PTB "
                        "tokenizer misaligns captions on \\r, \\f, \\u2028) or other samples")},
    "VLMEvalKit": {
        "*": _UNTOKENISED,
        "rouge_l": _UNTOKENISED + "; words split on single spaces (a doubled or trailing space is a word)",
        "cider": _UNTOKENISED + "; CIDEr-D's n-grams and document frequencies change with them",
    },
}
NOT_IN_TOOL = {"VLMEvalKit": {"meteor": "VLMEvalKit computes no METEOR"}}


def untokenized_scores(candidates: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """VLMEvalKit's COCO caption scores (x100): pycocoevalcap's Bleu(4), Rouge and Cider on raw captions.

    Example:
        >>> s = untokenized_scores({"1": "A dog."}, {"1": ["A dog.", "a dog"]})
        >>> round(s["rouge_l"], 6)
        100.0
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    res = {sid: [text] for sid, text in candidates.items()}
    gts = {sid: list(references[sid]) for sid in candidates}
    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # BleuScorer prints its length ratio
        bleu, _ = Bleu(4).compute_score(gts, res)
        out.update({f"bleu_{n}": 100 * float(v) for n, v in enumerate(bleu, 1)})
        out["rouge_l"] = 100 * float(Rouge().compute_score(gts, res)[0])
        out["cider"] = 100 * float(Cider().compute_score(gts, res)[0])
    return out


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _tool_way(tool: ToolFile, results: Results, captioner: str, ours: dict[str, float | None]
              ) -> dict[str, float | None]:
    ext = tool.external
    if ext.tool == "VLMEvalKit":  # on the file's captions as they are (VLMEvalKit doesn't normalise whitespace)
        cands = {sid: texts[0] for sid, texts in tool.candidates.captions.items()}
        refs = tool.references.captions if tool.references is not None else results.dataset.references
        return dict(untokenized_scores(cands, refs))
    return {k: (None if v is None else v * ext.scale) for k, v in ours.items()}


def compare_external(tools: dict[str, ToolFile], results: Results) -> dict[str, Any]:
    """The ``external`` section of ``summary.json``: per captioner whose tool file came with the tool's own
    scores, those scores beside capeval's."""
    summary = results.summary
    means = {(r.captioner, r.metric): _finite(r.mean) for r in summary.itertuples(index=False)}
    out: dict[str, Any] = {}
    for captioner, tool in tools.items():
        ext = tool.external
        if ext is None:
            continue
        ours = {key: means.get((captioner, key)) for key in ext.values}
        tool_way = _tool_way(tool, results, captioner, ours)
        metrics: dict[str, Any] = {}
        for key, theirs in ext.values.items():
            mine = ours[key]
            scaled = None if mine is None else mine * ext.scale
            way = tool_way.get(key)
            tol = AGREE * ext.scale * max(1.0, abs(theirs))
            explained = None if way is None else abs(theirs - way) <= 1e-6 * ext.scale * max(1.0, abs(theirs))
            known = REASONS.get(ext.tool, {})
            reason = known.get(key, known.get("*", ""))
            if mine is None:
                reason = f"capeval did not score {key} in this run (add it to --metrics)"
            elif abs(theirs - scaled) <= tol:
                reason = "agree"
            elif explained is False:
                reason += (f"; but computed {ext.tool}'s way capeval gets {way:.6g}, not {theirs:.6g}: the tool's "
                           "scores may come from other predictions or settings")
            metrics[key] = {
                "tool_name": ext.tool_names.get(key, key),
                "tool": theirs,
                "capeval": mine,
                "capeval_on_tool_scale": scaled,
                "difference": None if scaled is None else theirs - scaled,
                "tool_way": way,
                "explained": explained,
                "reason": reason,
            }
        for key, why in NOT_IN_TOOL.get(ext.tool, {}).items():
            if means.get((captioner, key)) is not None and key not in metrics:
                metrics[key] = {"tool_name": None, "tool": None, "capeval": means[(captioner, key)],
                                "capeval_on_tool_scale": means[(captioner, key)] * ext.scale, "difference": None,
                                "tool_way": None, "explained": None, "reason": why}
        out[captioner] = {"tool": ext.tool, "file": ext.path, "scale": ext.scale, "metrics": metrics}
    return out


def external_table(doc: dict[str, Any]):
    """A terminal table of the ``external`` section: the tools' numbers beside capeval's, and whether explained."""
    from rich.table import Table

    table = Table(title="the tools' own scores; capeval on the tool's scale (summary.json: external)")
    for col in ("captioner", "tool", "metric", "tool", "capeval", "tool's way", "explained"):
        table.add_column(col, justify="left" if col in ("captioner", "tool", "metric") else "right")
    for captioner, entry in doc.items():
        for metric, m in entry["metrics"].items():
            cells = [m["tool"], m["capeval_on_tool_scale"], m["tool_way"]]
            shown = ["–" if v is None else f"{v:.4f}" for v in cells]
            explained = {True: "yes", False: "NO", None: "–"}[m["explained"]]
            table.add_row(captioner, entry["tool"], metric, *shown, explained)
    return table
