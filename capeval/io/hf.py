"""Hugging Face ``datasets`` data: a dataset saved with ``save_to_disk``, or a ``.parquet`` / ``.arrow`` file.

Read with pyarrow (no ``datasets`` import needed): a ``save_to_disk`` folder lists its Arrow files in
``state.json``; a ``DatasetDict`` folder (``dataset_dict.json``) needs its split named when it has several
(``hf:DIR/validation``). The id and text columns are detected like every other format's fields, or given with
``--id-field/--text-field`` (``--ref-id-field/--ref-text-field`` for references, where a list column gives
several references per id). Only those columns are read, so image columns cost nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from capeval.errors import InputError
from capeval.io.detect import Role, ToolFile
from capeval.io.readers import ID_FIELDS, TEXT_FIELDS, _pick, captions_from_records


def _arrow_file(path: Path) -> pa.Table:
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all()  # what datasets writes
    except pa.ArrowInvalid:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()


def _disk_files(folder: Path) -> list[Path]:
    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        if len(splits) != 1:
            raise InputError(f"a DatasetDict with splits {splits}: name one, e.g. hf:{folder / splits[0]}"
                             if splits else "a DatasetDict with no splits", path=str(folder))
        folder = folder / splits[0]
    state = folder / "state.json"
    if not state.is_file():
        raise InputError("not a Hugging Face dataset folder (no state.json or dataset_dict.json)", path=str(folder))
    files = [folder / f["filename"] for f in json.loads(state.read_text(encoding="utf-8")).get("_data_files", [])]
    if not files:
        raise InputError("the dataset lists no data files in state.json", path=str(folder))
    return files


def read_table(path: str | Path) -> pa.Table:
    """The rows of a ``save_to_disk`` folder, a parquet file or an Arrow file, as one Arrow table."""
    p = Path(path)
    try:
        if p.is_dir():
            return pa.concat_tables([_arrow_file(f) for f in _disk_files(p)])
        if p.suffix.lower() == ".parquet":
            return pq.read_table(p)
        return _arrow_file(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable parquet/arrow dataset ({exc})", path=str(path)) from None


def read_hf_dataset(path: str, role: Role, *, id_field: str | None = None,
                    text_field: str | None = None) -> ToolFile:
    """Candidates (one caption per id) or references (a string or list column) from a Hugging Face dataset."""
    table = read_table(path)
    names = table.column_names
    idf = _pick(names, ID_FIELDS, id_field, "id", path)
    tf = _pick([n for n in names if n != idf], TEXT_FIELDS, text_field, "text", path)
    rows = table.select([idf, tf]).to_pylist()
    many = role == "references"
    captions = captions_from_records(enumerate(rows, 1), path, many=many, fmt="hf-dataset",
                                     id_field=idf, text_field=tf)
    if many:
        return ToolFile(path, "Hugging Face dataset", None, captions)
    return ToolFile(path, "Hugging Face dataset", captions)
