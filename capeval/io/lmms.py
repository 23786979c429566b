"""lmms-eval (EvolvingLMMs-Lab/lmms-eval) output files: ``<date>_samples_<task>.jsonl`` and ``<date>_results.json``.

A samples file has one record per document: ``doc_id``, ``target`` (``str()`` of the task's target),
``filtered_resps`` and ``resps`` (the model's replies: a string, ``[str]`` or ``[[str]]`` depending on the
lmms-eval version), and one key per metric of the task (``coco_CIDEr``, ``nocaps_Bleu_4``, ``flickr_METEOR``,
``detailcaps_CAPTURE``, ...) holding what the task's ``process_results`` passed to the aggregation:
``{"answer": [references], "pred": caption, "image_id": id}``. Those are what lmms-eval scored, so capeval reads
them first: the id is ``image_id`` (else ``doc_id``), the caption ``pred`` (else the replies), the references
``answer`` (else ``target``, parsed as a literal without evaluating it). Test splits (``*_passthrough``) have no
references: pass ``--refs``.

An older layout, ``<task>.json`` holding ``{"logs": [records]}``, is read too. lmms-eval's own scores come from the
results file beside it (``results[task]["coco_CIDEr,none"]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capeval.errors import InputError
from capeval.io.detect import ExternalScores, ToolFile
from capeval.io.literal import NotACaptionLiteral, parse_caption_literal
from capeval.io.readers import captions_from_records

SAMPLES_NAME = re.compile(r"^(?P<date>.*?)_?samples_(?P<task>.+)\.jsonl$")
# lmms-eval's COCO-style metric names (after the task prefix: coco_, nocaps_, flickr_, detailcaps_) -> capeval's.
METRIC_NAMES = {
    "Bleu_1": "bleu_1", "Bleu_2": "bleu_2", "Bleu_3": "bleu_3", "Bleu_4": "bleu_4", "METEOR": "meteor",
    "ROUGE_L": "rouge_l", "CIDEr": "cider", "SPICE": "spice", "CAPTURE": "capture",
}


def _records(path: str) -> Iterator[tuple[int, dict]]:
    if path.endswith(".json"):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON (line {exc.lineno}: {exc.msg})", path=path) from None
        logs = data.get("logs") if isinstance(data, dict) else data
        if not isinstance(logs, list):
            raise InputError("not an lmms-eval samples file (no list of records under 'logs')", path=path)
        yield from enumerate(logs, 1)
        return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"line {lineno}: not valid JSON ({exc.msg})", path=path) from None


def _metric_entry(rec: dict) -> tuple[str, dict] | None:
    """The first per-metric value that is process_results' dict (``{"pred", ...}``)."""
    for key, value in rec.items():
        if isinstance(value, dict) and "pred" in value:
            return key, value
    return None


def _reply(value: Any, where: str, path: str) -> str:
    """The caption in ``filtered_resps``/``resps``: ``str``, ``[str]`` or ``[[str]]`` (first reply)."""
    while isinstance(value, list):
        if not value:
            return ""
        value = value[0]
    if not isinstance(value, str):
        raise InputError(f"{where}: the reply is {type(value).__name__}, not a string", path=path)
    return value


def _references(entry: dict | None, rec: dict, where: str, path: str) -> list[str] | None:
    if entry is not None and "answer" in entry:
        answer = entry["answer"]
        if isinstance(answer, str):
            return [answer]
        if isinstance(answer, list) and all(isinstance(a, str) for a in answer):
            return answer
        raise InputError(f"{where}: 'answer' must be a list of strings, got {answer!r:.80}", path=path)
    if entry is not None:
        return None  # a passthrough (test split) entry: no references
    target = rec.get("target")
    if target is None:
        return None
    if isinstance(target, list) and all(isinstance(a, str) for a in target):
        return target
    if not isinstance(target, str):
        raise InputError(f"{where}: 'target' is {type(target).__name__}, not text", path=path)
    try:
        return parse_caption_literal(target)
    except NotACaptionLiteral:
        return [target]  # a task whose target is one plain caption


def find_results_file(samples_path: str | Path) -> Path | None:
    """The results json written with a samples file (same folder, same date prefix), or None."""
    p = Path(samples_path)
    match = SAMPLES_NAME.match(p.name)
    if match and match.group("date"):
        same = p.with_name(f"{match.group('date')}_results.json")
        if same.is_file():
            return same
    found = sorted(p.parent.glob("*results.json"))
    return found[-1] if len(found) == 1 else None


def read_lmms_results(path: str | Path, task: str) -> ExternalScores | None:
    """lmms-eval's own caption scores for ``task`` from a results json (keys like ``coco_CIDEr,none``)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable lmms-eval results file ({exc})", path=str(path)) from None
    scores = (doc.get("results") or {}).get(task) if isinstance(doc, dict) else None
    if not isinstance(scores, dict):
        return None
    values, names = {}, {}
    for key, value in scores.items():
        metric, _, _filter = key.partition(",")
        prefix, _, base = metric.partition("_")
        if base in METRIC_NAMES and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[METRIC_NAMES[base]] = float(value)
            names[METRIC_NAMES[base]] = metric
    return ExternalScores("lmms-eval", str(path), values, names, 1.0) if values else None


def read_lmms_samples(path: str) -> ToolFile:
    """Candidates, references and lmms-eval's own scores (from the results file beside it) of a samples file.

    The default captioner name is the folder's (lmms-eval writes into ``<output>/<model name>/``).
    """
    cand_rows: list[tuple[int, dict]] = []
    ref_rows: list[tuple[int, dict]] = []
    missing_refs: list[int] = []
    for lineno, rec in _records(path):
        where = f"line {lineno}"
        if not isinstance(rec, dict):
            raise InputError(f"{where}: expected an object, got {type(rec).__name__}", path=path)
        if "doc_id" not in rec:
            raise InputError(f"{where}: not an lmms-eval sample (no 'doc_id')", path=path)
        found = _metric_entry(rec)
        entry = found[1] if found else None
        sample_id = entry.get("image_id", rec["doc_id"]) if entry is not None else rec["doc_id"]
        if entry is not None:
            caption = _reply(entry["pred"], where, path)  # flickr30k's passthrough keeps the reply list
        elif "filtered_resps" in rec or "resps" in rec:
            caption = _reply(rec.get("filtered_resps", rec.get("resps")), where, path)
        else:
            raise InputError(f"{where}: no reply ('filtered_resps', 'resps' or a metric's 'pred')", path=path)
        cand_rows.append((lineno, {"image_id": sample_id, "caption": caption}))
        refs = _references(entry, rec, where, path)
        if refs is None:
            missing_refs.append(lineno)
        else:
            ref_rows.append((lineno, {"image_id": sample_id, "caption": refs}))
    if ref_rows and missing_refs:
        raise InputError(f"line {missing_refs[0]}: no references ('answer' or 'target'), "
                         "though other lines have them", path=path)
    candidates = captions_from_records(cand_rows, path, many=False, fmt="lmms-eval",
                                       id_field="image_id", text_field="caption")
    references = (captions_from_records(ref_rows, path, many=True, fmt="lmms-eval",
                                        id_field="image_id", text_field="caption") if ref_rows else None)
    p = Path(path)
    match = SAMPLES_NAME.match(p.name)
    task = match.group("task") if match else p.stem
    external = None
    results = find_results_file(p)
    if results is not None:
        external = read_lmms_results(results, task)
    captioner = p.parent.name if match and p.parent.name else None
    return ToolFile(path, "lmms-eval", candidates, references, external, captioner)
