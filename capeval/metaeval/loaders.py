"""Loaders for caption human-judgment corpora: Flickr8k-Expert/CF, Pascal-50S and THumB 1.0.

Each loader reads the public file layout (see the dataset cards in ``datasets/``), validates it and returns a
small dataclass; a malformed file raises :class:`~capeval.errors.InputError` naming the file, the entry and
the problem. Nothing here scores anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capeval.errors import InputError

PASCAL_CATEGORIES = ("HC", "HI", "HM", "MM")


@dataclass(frozen=True)
class RatedCaption:
    """One human rating of one candidate caption of one image (a Flickr8k row)."""

    key: str
    caption: str
    rating: float


@dataclass
class RatingsData:
    """Flickr8k-style data: one row per human rating, references per image key."""

    path: str
    rows: list[RatedCaption]
    references: dict[str, list[str]]
    images: dict[str, str] = field(default_factory=dict)
    dropped_nan: int = 0


@dataclass(frozen=True)
class CaptionPair:
    """One Pascal-50S judgment: which of two captions humans preferred (``label`` is its index)."""

    category: str
    index: int
    captions: tuple[str, str]
    label: int
    references: tuple[str, ...]
    image: str | None = None


@dataclass
class PairsData:
    """Pascal-50S-style data: pairwise human preferences grouped by category."""

    path: str
    pairs: list[CaptionPair]

    @property
    def categories(self) -> list[str]:
        """Categories in file order."""
        return list(dict.fromkeys(p.category for p in self.pairs))


@dataclass(frozen=True)
class SystemCaption:
    """One THumB row: a system's caption for one segment (image) and its human score."""

    system: str
    seg_id: str
    caption: str
    score: float
    image: str | None = None


@dataclass
class SystemsData:
    """THumB-style data: several systems' captions of the same segments, with human scores."""

    path: str
    refs_path: str
    rows: list[SystemCaption]
    references: dict[str, list[str]]

    @property
    def systems(self) -> list[str]:
        """System names in file order."""
        return list(dict.fromkeys(r.system for r in self.rows))


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", path=str(path)) from None


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number} is not valid JSON: {exc}", path=str(path)) from None
        if not isinstance(row, dict):
            raise InputError(f"line {number} is not a JSON object", path=str(path))
        yield number, row


def _string_list(value: Any, what: str, path: Path, sample_id: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{what} must be a non-empty list of strings", path=str(path), sample_id=sample_id)
    for item in value:
        if not isinstance(item, str):
            raise InputError(f"{what} holds a {type(item).__name__}, expected strings", path=str(path),
                             sample_id=sample_id)
    if not any(item.strip() for item in value):
        raise InputError(f"every entry of {what} is blank", path=str(path), sample_id=sample_id)
    return list(value)


def _number(value: Any, what: str, path: Path, sample_id: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {value!r}", path=str(path), sample_id=sample_id)
    return float(value)


def load_flickr8k(path: str | Path) -> RatingsData:
    """Read Flickr8k-Expert or Flickr8k-CF in the CLIPScore / PAC-S JSON layout.

    ``{key: {"human_judgement": [{"caption", "rating", ...}], "ground_truth": [ref, ...], "image_path"?}}``.
    A rating that is NaN or null is dropped and counted (``dropped_nan``), as the CLIPScore scripts do.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputError("expected a JSON object {image key: {human_judgement, ground_truth}}", path=str(path))
    rows: list[RatedCaption] = []
    references: dict[str, list[str]] = {}
    images: dict[str, str] = {}
    dropped = 0
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise InputError("entry is not a JSON object", path=str(path), sample_id=key)
        for needed in ("human_judgement", "ground_truth"):
            if needed not in entry:
                raise InputError(f"entry has no {needed!r} field", path=str(path), sample_id=key)
        references[key] = _string_list(entry["ground_truth"], "ground_truth", path, key)
        if isinstance(entry.get("image_path"), str):
            images[key] = entry["image_path"]
        judgements = entry["human_judgement"]
        if not isinstance(judgements, list):
            raise InputError("human_judgement must be a list", path=str(path), sample_id=key)
        for number, judgement in enumerate(judgements):
            where = f"{key} judgement {number}"
            if not isinstance(judgement, dict) or "caption" not in judgement or "rating" not in judgement:
                raise InputError("judgement needs 'caption' and 'rating'", path=str(path), sample_id=where)
            caption = judgement["caption"]
            if not isinstance(caption, str):
                raise InputError(f"caption must be a string, got {type(caption).__name__}", path=str(path),
                                 sample_id=where)
            if judgement["rating"] is None:
                dropped += 1
                continue
            rating = _number(judgement["rating"], "rating", path, where)
            if math.isnan(rating):
                dropped += 1
                continue
            rows.append(RatedCaption(key=key, caption=caption, rating=rating))
    if not rows:
        raise InputError("no usable human rating (every rating is NaN or missing)", path=str(path))
    return RatingsData(path=str(path), rows=rows, references=references, images=images, dropped_nan=dropped)


def load_pascal50s(path: str | Path) -> PairsData:
    """Read Pascal-50S in the FLEUR / EXPERT JSON layout.

    ``{"HC"|"HI"|"HM"|"MM": [{"captions": [a, b], "label": 0|1, "references": [...], "image"?}]}``; ``label``
    is the index of the caption the human majority preferred.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputError(f"expected a JSON object with categories {', '.join(PASCAL_CATEGORIES)}", path=str(path))
    unknown = [k for k in data if k not in PASCAL_CATEGORIES]
    if unknown:
        raise InputError(f"unknown categories {unknown}; expected {', '.join(PASCAL_CATEGORIES)}", path=str(path))
    pairs: list[CaptionPair] = []
    for category in PASCAL_CATEGORIES:
        if category not in data:
            continue
        items = data[category]
        if not isinstance(items, list):
            raise InputError("category must hold a list of pairs", path=str(path), sample_id=category)
        for index, item in enumerate(items):
            where = f"{category}[{index}]"
            if not isinstance(item, dict):
                raise InputError("pair is not a JSON object", path=str(path), sample_id=where)
            for needed in ("captions", "label", "references"):
                if needed not in item:
                    raise InputError(f"pair has no {needed!r} field", path=str(path), sample_id=where)
            captions = item["captions"]
            if (not isinstance(captions, list) or len(captions) != 2
                    or not all(isinstance(c, str) for c in captions)):
                raise InputError("captions must be a list of two strings", path=str(path), sample_id=where)
            label = item["label"]
            if isinstance(label, bool) or label not in (0, 1):
                raise InputError(f"label must be 0 or 1, got {label!r}", path=str(path), sample_id=where)
            refs = _string_list(item["references"], "references", path, where)
            image = item.get("image") if isinstance(item.get("image"), str) else None
            pairs.append(CaptionPair(category=category, index=index, captions=(captions[0], captions[1]),
                                     label=int(label), references=tuple(refs), image=image))
    if not pairs:
        raise InputError("no caption pairs", path=str(path))
    return PairsData(path=str(path), pairs=pairs)


def default_thumb_references(path: str | Path) -> Path:
    """The references file beside a THumB scores file (``mscoco_references.jsonl`` or ``.json``)."""
    path = Path(path)
    stem = path.name.split("_THumB")[0] if "_THumB" in path.name else "mscoco"
    for name in (f"{stem}_references.jsonl", f"{stem}_references.json"):
        if (path.parent / name).exists():
            return path.parent / name
    raise InputError(f"no references file beside it ({stem}_references.jsonl); give one with --refs",
                     path=str(path))


def load_thumb(path: str | Path, refs_path: str | Path | None = None) -> SystemsData:
    """Read THumB 1.0: a JSONL of ``{SYS, seg_id, hyp, human_score}`` and a JSONL of ``{seg_id, refs}``."""
    path = Path(path)
    refs_file = Path(refs_path) if refs_path is not None else default_thumb_references(path)
    references: dict[str, list[str]] = {}
    for number, row in _read_jsonl(refs_file):
        if "seg_id" not in row or "refs" not in row:
            raise InputError(f"line {number} needs 'seg_id' and 'refs'", path=str(refs_file))
        seg = str(row["seg_id"])
        if seg in references:
            raise InputError("duplicate seg_id", path=str(refs_file), sample_id=seg)
        references[seg] = _string_list(row["refs"], "refs", refs_file, seg)
    rows: list[SystemCaption] = []
    seen: set[tuple[str, str]] = set()
    for number, row in _read_jsonl(path):
        missing = [k for k in ("SYS", "seg_id", "hyp", "human_score") if k not in row]
        if missing:
            raise InputError(f"line {number} has no {', '.join(missing)}", path=str(path))
        system, seg = str(row["SYS"]), str(row["seg_id"])
        where = f"{system}/{seg}"
        if (system, seg) in seen:
            raise InputError("duplicate (SYS, seg_id)", path=str(path), sample_id=where)
        seen.add((system, seg))
        if seg not in references:
            raise InputError(f"seg_id has no references in {refs_file}", path=str(path), sample_id=where)
        if not isinstance(row["hyp"], str):
            raise InputError(f"hyp must be a string, got {type(row['hyp']).__name__}", path=str(path),
                             sample_id=where)
        score = _number(row["human_score"], "human_score", path, where)
        if math.isnan(score):
            raise InputError("human_score is NaN", path=str(path), sample_id=where)
        image = row.get("image") if isinstance(row.get("image"), str) else None
        rows.append(SystemCaption(system=system, seg_id=seg, caption=row["hyp"], score=score, image=image))
    if not rows:
        raise InputError("no rows", path=str(path))
    return SystemsData(path=str(path), refs_path=str(refs_file), rows=rows, references=references)
