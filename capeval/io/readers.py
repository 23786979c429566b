"""Readers for the caption file formats capeval accepts.

Formats (detected from the file's content, not only its name):

* COCO annotation file: ``{"images": [...], "annotations": [{"image_id", "caption"}, ...]}``
* COCO results list: ``[{"image_id": ..., "caption": ...}, ...]``
* JSON map: ``{id: "caption"}`` or ``{id: ["ref", ...]}``
* JSONL: one object per line with an id field and a text field (string or list of strings)
* CSV/TSV: a header row with an id column and a text column; several rows per id make several references

Id and text fields are detected from common names (``--id-field`` / ``--text-field`` override).

Ids keep their type where the format has one (JSON numbers vs strings). JSON object keys and CSV cells have
no type ("untyped"): they are matched against the other file's ids as text. Inside capeval every id is a str.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from capeval.errors import InputError

ID_FIELDS = ("image_id", "sample_id", "seg_id", "id", "image", "key", "file_name", "filename", "img_id")
TEXT_FIELDS = (
    "caption", "captions", "hyp", "hypothesis", "prediction", "pred", "text",
    "refs", "references", "reference", "ref", "output",
)
IMAGE_FIELDS = ("image_path", "file_name", "filename", "image", "img_path", "url", "coco_url")

IdKind = Literal["int", "str", "untyped"]


@dataclass
class CaptionFile:
    """Captions read from one file: ``captions[id]`` lists that id's captions in file order."""

    path: str
    captions: dict[str, list[str]]
    id_kind: IdKind
    images: dict[str, str] = field(default_factory=dict)
    format: str = ""
    sha256: str = ""  # of the file's bytes (the run's manifest records it)


@dataclass
class _Row:
    sample_id: Any
    text: Any
    line: int | None
    image: str | None = None
    system: str | None = None


def _pick(keys: Iterable[str], wanted: tuple[str, ...], override: str | None, what: str, path: str) -> str:
    keys = list(keys)
    if override is not None:
        if override not in keys:
            raise InputError(f"no {what} field {override!r}; fields are {keys}", path=path)
        return override
    lower = {k.lower(): k for k in keys}
    for name in wanted:
        if name in lower:
            return lower[name]
    raise InputError(
        f"cannot tell which field holds the {what}; fields are {keys}; "
        f"pass --{'id' if what == 'id' else 'text'}-field",
        path=path,
    )


def _text_field_candidates(keys: Iterable[str], id_field: str) -> list[str]:
    return [k for k in keys if k != id_field]


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", path=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc})", path=path) from None


def _rows_from_records(
    records: Iterable[tuple[int | None, dict]],
    path: str,
    id_field: str | None,
    text_field: str | None,
    system_field: str | None,
) -> Iterator[_Row]:
    chosen: tuple[str, str, str | None] | None = None
    for line, rec in records:
        if not isinstance(rec, dict):
            raise InputError(f"line {line}: expected an object, got {type(rec).__name__}", path=path)
        if chosen is None:
            idf = _pick(rec.keys(), ID_FIELDS, id_field, "id", path)
            tf = _pick(_text_field_candidates(rec.keys(), idf), TEXT_FIELDS, text_field, "text", path)
            imgs = [k for k in rec if k.lower() in IMAGE_FIELDS and k not in (idf, tf)]
            chosen = (idf, tf, imgs[0] if imgs else None)
        idf, tf, imgf = chosen
        where = f"line {line}: " if line is not None else ""
        if idf not in rec:
            raise InputError(f"{where}missing id field {idf!r}", path=path)
        if tf not in rec:
            raise InputError(f"{where}missing text field {tf!r}", path=path, sample_id=rec[idf])
        system = None
        if system_field is not None:
            if system_field not in rec:
                raise InputError(f"{where}missing system field {system_field!r}", path=path, sample_id=rec[idf])
            system = str(rec[system_field])
        image = rec.get(imgf) if imgf else None
        yield _Row(rec[idf], rec[tf], line, image if isinstance(image, str) else None, system)


def _detect_json(data: Any, path: str, id_field, text_field, system_field) -> tuple[str, IdKind, Iterator[_Row]]:
    if isinstance(data, dict) and "annotations" in data and isinstance(data["annotations"], list):
        images = {}
        for img in data.get("images", []) or []:
            if isinstance(img, dict) and "id" in img and isinstance(img.get("file_name"), str):
                images[img["id"]] = img["file_name"]
        rows = _rows_from_records(
            ((None, a) for a in data["annotations"]), path, id_field or "image_id", text_field or "caption",
            system_field,
        )

        def with_images() -> Iterator[_Row]:
            for r in rows:
                if r.image is None and r.sample_id in images:
                    r.image = images[r.sample_id]
                yield r

        return "coco-annotations", "typed", with_images()
    if isinstance(data, list):
        return "records", "typed", _rows_from_records(
            ((i, r) for i, r in enumerate(data)), path, id_field, text_field, system_field
        )
    if isinstance(data, dict):
        if system_field is not None:
            raise InputError("--system-field needs a list of records, not a JSON map", path=path)
        return "json-map", "untyped", (_Row(k, v, None) for k, v in data.items())
    raise InputError(f"unsupported JSON layout (top level is {type(data).__name__})", path=path)


def _jsonl_records(path: str) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"line {lineno}: not valid JSON ({exc.msg})", path=path) from None


def _csv_records(path: str) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8", newline="") as f:
        sample = f.read(4096)
        f.seek(0)
        delimiter = "\t" if path.endswith((".tsv", ".tab")) or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise InputError("empty CSV file (no header row)", path=path)
        yield from enumerate(reader, 2)


def _read_rows(path: str, id_field, text_field, system_field) -> tuple[str, str, Iterator[_Row]]:
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl", "typed", _rows_from_records(_jsonl_records(path), path, id_field, text_field, system_field)
    if suffix in (".csv", ".tsv", ".tab"):
        return "csv", "untyped", _rows_from_records(_csv_records(path), path, id_field, text_field, system_field)
    data = _load_json(path)
    return _detect_json(data, path, id_field, text_field, system_field)


def _id_kind(value: Any, typed: str, path: str, line: int | None) -> IdKind:
    if typed == "untyped":
        return "untyped"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        where = f"line {line}: " if line is not None else ""
        raise InputError(f"{where}id must be an integer or a string, got {type(value).__name__}",
                         path=path, sample_id=value)
    return "int" if isinstance(value, int) else "str"


def _texts(value: Any, path: str, sample_id: Any, line: int | None, many: bool) -> list[str]:
    where = f"line {line}: " if line is not None else ""
    if isinstance(value, str):
        return [value]
    if many and isinstance(value, list):
        for v in value:
            if not isinstance(v, str):
                raise InputError(f"{where}reference is {type(v).__name__}, not a string: {v!r}",
                                 path=path, sample_id=sample_id)
        return list(value)
    kind = "a string or a list of strings" if many else "a string"
    raise InputError(f"{where}caption must be {kind}, got {type(value).__name__}: {value!r:.80}",
                     path=path, sample_id=sample_id)


def _collect(path: str, typed: str, rows: Iterable[_Row], *, many: bool, fmt: str) -> CaptionFile:
    captions: dict[str, list[str]] = {}
    raw_ids: dict[str, Any] = {}
    images: dict[str, str] = {}
    kinds: set[IdKind] = set()
    for row in rows:
        kind = _id_kind(row.sample_id, typed, path, row.line)
        kinds.add(kind)
        key = str(row.sample_id)
        if key in raw_ids and raw_ids[key] != row.sample_id:
            raise InputError(
                f"the same id appears as {raw_ids[key]!r} and {row.sample_id!r} (integer vs string)",
                path=path, sample_id=row.sample_id,
            )
        texts = _texts(row.text, path, row.sample_id, row.line, many)
        if key in captions and not many:
            where = f"line {row.line}: " if row.line is not None else ""
            raise InputError(f"{where}duplicate id (a captioner gives one caption per id)",
                             path=path, sample_id=row.sample_id)
        raw_ids[key] = row.sample_id
        captions.setdefault(key, []).extend(texts)
        if row.image and key not in images:
            images[key] = row.image
    if not captions:
        raise InputError("no captions found", path=path)
    if len(kinds) > 1:
        raise InputError("ids mix integers and strings", path=path)
    from capeval.hashing import sha256_file

    digest = sha256_file(path) if Path(path).is_file() else ""
    return CaptionFile(path=path, captions=captions, id_kind=kinds.pop(), images=images, format=fmt, sha256=digest)


def read_references(path: str | Path, *, id_field: str | None = None, text_field: str | None = None) -> CaptionFile:
    """Read reference captions: several per id (a list, or several rows/annotations with the same id)."""
    path = str(path)
    fmt, typed, rows = _read_rows(path, id_field, text_field, None)
    return _collect(path, typed, rows, many=True, fmt=fmt)


def read_candidates(
    path: str | Path,
    *,
    id_field: str | None = None,
    text_field: str | None = None,
    system_field: str | None = None,
) -> dict[str | None, CaptionFile]:
    """Read candidate captions: one per id.

    With ``system_field`` the file holds several captioners (e.g. THumB's ``SYS``) and the result has one
    entry per captioner; otherwise the single entry's key is None.
    """
    path = str(path)
    fmt, typed, rows = _read_rows(path, id_field, text_field, system_field)
    if system_field is None:
        return {None: _collect(path, typed, rows, many=False, fmt=fmt)}
    by_system: dict[str, list[_Row]] = {}
    for row in rows:
        by_system.setdefault(row.system or "", []).append(row)
    return {name: _collect(path, typed, r, many=False, fmt=fmt) for name, r in by_system.items()}
