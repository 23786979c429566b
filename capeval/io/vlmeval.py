"""VLMEvalKit (open-compass/VLMEvalKit) prediction files: ``<model>_<dataset>.xlsx`` / ``.tsv`` / ``.json``.

The file is the benchmark's table minus the image, plus the model's ``prediction``: one row per sample with
``index``, ``question``, ``answer`` and ``prediction``. For caption benchmarks (COCO_VAL) ``answer`` holds the
references as ``str(list)``, which VLMEvalKit reads back with ``eval``; capeval parses it as a literal
(:mod:`capeval.io.literal`) and refuses anything else, naming the file and row. The sample id is ``index`` (or
``--id-field``, e.g. an image column); spreadsheet cells have no type, so ids match the references' ids as text.
The captioner is named after the model (``<model>_COCO_VAL.xlsx``).
An empty prediction cell is the empty caption.

VLMEvalKit's own scores are in ``<model>_<dataset>_score.json`` beside it: ``{"Bleu": [B1..B4], "ROUGE_L",
"CIDEr"}``, x100, computed by pycocoevalcap's scorers on untokenised captions (no PTB tokenizer) and no METEOR.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from capeval.errors import InputError
from capeval.io.detect import ExternalScores, ToolFile
from capeval.io.literal import NotACaptionLiteral, parse_caption_literal
from capeval.io.readers import captions_from_records

REQUIRED = ("prediction",)
SCORE_NAMES = {"ROUGE_L": "rouge_l", "CIDEr": "cider", "METEOR": "meteor"}
CAPTION_DATASETS = ("COCO_VAL",)  # VLMEvalKit's ImageCaptionDataset benchmarks: <model>_<dataset>.xlsx


def _table(path: str) -> tuple[pd.DataFrame, int]:
    """The prediction table and the row number of its first data row (spreadsheet/line row; JSON: record 1)."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".xlsx", ".xls"):
            try:
                return pd.read_excel(path, dtype=object), 2
            except ImportError as exc:
                raise InputError(f"reading .xlsx needs openpyxl (pip install 'capeval[formats]'): {exc}",
                                 path=path) from None
        if suffix in (".tsv", ".csv"):
            sep = "\t" if suffix == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False), 2
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"not a readable VLMEvalKit prediction file ({exc})", path=path) from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError("a VLMEvalKit .json prediction file is a list of row objects", path=path)
    return pd.DataFrame(data, dtype=object), 1


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell_text(value: Any) -> str:
    """A cell as text: integral floats (spreadsheets) print without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _answer(value: Any, where: str, path: str) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if not isinstance(value, str):
        raise InputError(f"{where}: 'answer' is {type(value).__name__}, not a list of reference captions",
                         path=path)
    try:
        return parse_caption_literal(value)
    except NotACaptionLiteral as exc:
        raise InputError(f"{where}: 'answer' refused ({exc}; only a literal list of strings is read, "
                         f"nothing is evaluated): {value!r:.80}", path=path) from None


def score_file(path: str | Path) -> Path:
    """Where VLMEvalKit writes the scores of a prediction file: ``<stem>_score.json`` beside it."""
    p = Path(path)
    return p.with_name(f"{p.stem}_score.json")


def read_vlmeval_scores(path: str | Path) -> ExternalScores | None:
    """VLMEvalKit's caption scores (x100) from a ``*_score.json``, keyed by capeval's output names."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable VLMEvalKit score file ({exc})", path=str(path)) from None
    if not isinstance(doc, dict):
        return None
    values, names = {}, {}
    bleu = doc.get("Bleu")
    if isinstance(bleu, list):
        for n, v in enumerate(bleu[:4], 1):
            if isinstance(v, (int, float)):
                values[f"bleu_{n}"], names[f"bleu_{n}"] = float(v), f"Bleu[{n - 1}]"
    for theirs, ours in SCORE_NAMES.items():
        if isinstance(doc.get(theirs), (int, float)):
            values[ours], names[ours] = float(doc[theirs]), theirs
    return ExternalScores("VLMEvalKit", str(path), values, names, 100.0) if values else None


def read_vlmeval_predictions(path: str, *, id_field: str | None = None) -> ToolFile:
    """Candidates, references (from ``answer``) and VLMEvalKit's own scores of a prediction file."""
    table, first_row = _table(path)
    columns = list(table.columns)
    id_col = id_field or "index"
    for col in (id_col, *REQUIRED):
        if col not in columns:
            raise InputError(f"no {col!r} column; columns are {columns}"
                             + ("; pass --id-field" if col == id_col else ""), path=path)
    has_answer = "answer" in columns
    cand_rows, ref_rows, seen = [], [], {}
    for k, row in enumerate(table.to_dict("records")):
        line = first_row + k
        where = f"row {line}"
        raw_id = row[id_col]
        if _blank(raw_id) or str(raw_id).strip() == "":
            raise InputError(f"{where}: empty {id_col!r}", path=path)
        sample_id = _cell_text(raw_id)
        if sample_id in seen:
            raise InputError(f"{where}: duplicate {id_col} {sample_id!r} (first in row {seen[sample_id]})",
                             path=path, sample_id=sample_id)
        seen[sample_id] = line
        pred = row["prediction"]
        caption = "" if _blank(pred) else _cell_text(pred)
        cand_rows.append((line, {"image_id": sample_id, "caption": caption}))
        if has_answer:
            ref_rows.append((line, {"image_id": sample_id, "caption": _answer(row["answer"], where, path)}))
    candidates = captions_from_records(cand_rows, path, many=False, fmt="vlmeval", id_field="image_id",
                                       text_field="caption", typed="untyped")
    references = (captions_from_records(ref_rows, path, many=True, fmt="vlmeval", id_field="image_id",
                                        text_field="caption", typed="untyped") if ref_rows else None)
    scores = score_file(path)
    external = read_vlmeval_scores(scores) if scores.is_file() else None
    stem = Path(path).stem
    model = next((stem[: -len(d) - 1] for d in CAPTION_DATASETS if stem.endswith(f"_{d}") and len(stem) > len(d) + 1),
                 None)
    return ToolFile(path, "VLMEvalKit", candidates, references, external, model)
