"""Parquet and JSONL tables read in chunks of rows (pyarrow), for inputs larger than memory.

:func:`iter_chunks` yields ``pyarrow.Table`` pieces of at most ``rows`` rows with a running row offset, so an
error can name the file and the row (1-based, as a user counts rows). :func:`pick_fields` finds the caption,
reference and id columns the same way the other readers do (:data:`capeval.io.readers.TEXT_FIELDS`,
:data:`capeval.io.readers.ID_FIELDS`), with ``--text-field``/``--ref-field``/``--id-field`` overrides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from capeval.errors import InputError
from capeval.io.readers import ID_FIELDS

CANDIDATE_FIELDS = ("caption", "hyp", "hypothesis", "prediction", "pred", "candidate", "text", "output")
REFERENCE_FIELDS = ("refs", "references", "reference_captions", "gts", "captions", "reference", "ref")
DEFAULT_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class Fields:
    """Which columns hold the candidate caption, the reference list (optional) and the id (optional)."""

    text: str
    refs: str | None
    id: str | None


def table_format(path: str | Path) -> str:
    """``parquet`` or ``jsonl`` from the file name (a clear error for anything else)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise InputError("annotate reads .parquet or .jsonl files", path=str(path))


def schema_of(path: str | Path) -> pa.Schema:
    """The columns of a table file (JSONL: from its first chunk)."""
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).schema_arrow
    for _, table in iter_chunks(path, 1000):
        return table.schema
    raise InputError("no rows", path=str(path))


def count_rows(path: str | Path) -> int | None:
    """Rows of a parquet file from its metadata (None for JSONL: unknown without reading it)."""
    if table_format(path) != "parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def iter_chunks(path: str | Path, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[int, pa.Table]]:
    """``(offset, table)`` pieces of at most ``rows`` rows, in file order; memory stays at one piece."""
    path = str(path)
    if not Path(path).exists():
        raise InputError("file not found", path=path)
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"not a readable parquet file ({exc})", path=path) from None
        offset = 0
        for batch in pf.iter_batches(batch_size=rows):
            yield offset, pa.Table.from_batches([batch])
            offset += batch.num_rows
        return
    offset, records = 0, []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"line {lineno}: not valid JSON ({exc.msg})", path=path) from None
            if not isinstance(rec, dict):
                raise InputError(f"line {lineno}: expected an object, got {type(rec).__name__}", path=path)
            records.append(rec)
            if len(records) >= rows:
                yield offset, _records_table(records, path, lineno)
                offset += len(records)
                records = []
    if records:
        yield offset, _records_table(records, path, None)


def _records_table(records: list[dict], path: str, lineno: int | None) -> pa.Table:
    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        where = f"near line {lineno}: " if lineno else ""
        raise InputError(f"{where}rows with different types in one field ({exc})", path=path) from None


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_text_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type)


def pick_fields(schema: pa.Schema, path: str, *, text_field: str | None = None, ref_field: str | None = None,
                id_field: str | None = None, need_refs: bool = True) -> Fields:
    """Find the candidate, reference-list and id columns (overrides first); one-line errors otherwise."""
    names = list(schema.names)
    lower = {n.lower(): n for n in names}

    def named(override: str | None, what: str) -> str | None:
        if override is None:
            return None
        if override not in names:
            raise InputError(f"no {what} column {override!r}; columns are {names}", path=path)
        return override

    refs = named(ref_field, "reference")
    if refs is not None and not _is_text_list(schema.field(refs).type):
        raise InputError(f"reference column {refs!r} must be a list of strings, "
                         f"it is {schema.field(refs).type}", path=path)
    if refs is None and need_refs:
        refs = next((lower[n] for n in REFERENCE_FIELDS if n in lower and _is_text_list(schema.field(lower[n]).type)),
                    None)
    text = named(text_field, "caption")
    if text is None:
        text = next((lower[n] for n in CANDIDATE_FIELDS if n in lower and lower[n] != refs
                     and _is_text(schema.field(lower[n]).type)), None)
    if text is None:
        raise InputError(f"cannot tell which column holds the caption; columns are {names}; pass --text-field",
                         path=path)
    if not _is_text(schema.field(text).type):
        raise InputError(f"caption column {text!r} must hold strings, it is {schema.field(text).type}", path=path)
    ident = named(id_field, "id")
    if ident is None:
        ident = next((lower[n] for n in ID_FIELDS if n in lower and lower[n] not in (text, refs)), None)
    return Fields(text=text, refs=refs, id=ident)
