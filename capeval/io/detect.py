"""Which reader a tool's output file needs: the ``lmms:``/``vlmeval:``/``hf:`` prefixes, or the file's content.

* ``lmms:`` lmms-eval samples files (``<date>_samples_<task>.jsonl``), see :mod:`capeval.io.lmms`;
* ``vlmeval:`` VLMEvalKit prediction files (``<model>_<dataset>.xlsx|.tsv|.json``), see :mod:`capeval.io.vlmeval`;
* ``hf:`` a Hugging Face dataset saved to disk, or a parquet/arrow file, see :mod:`capeval.io.hf`.

Without a prefix the format is recognised from the content (lmms-eval: records with ``doc_id`` and
``filtered_resps``/``resps``; VLMEvalKit: columns ``index``, ``answer`` and ``prediction``; Hugging Face: a
``save_to_disk`` folder or a ``.parquet``/``.arrow`` file). Every other file goes to :mod:`capeval.io.readers`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from capeval.errors import InputError
from capeval.io.readers import CaptionFile

PREFIXES = ("lmms", "vlmeval", "hf")
Role = Literal["candidates", "references"]
_PREFIX = re.compile(r"^(lmms|vlmeval|hf):(.+)$")
_SNIFF_BYTES = 65536


@dataclass
class ExternalScores:
    """The scores a tool computed itself, as it reports them (read from its results file)."""

    tool: str  # "lmms-eval" or "VLMEvalKit"
    path: str  # the file they were read from
    values: dict[str, float]  # capeval output key -> the tool's number
    tool_names: dict[str, str]  # capeval output key -> the tool's own name for it
    scale: float = 1.0  # the tool's number = capeval's number x scale


@dataclass
class ToolFile:
    """What one tool file holds: candidates, and when the file has them, references and the tool's scores."""

    path: str
    format: str
    candidates: CaptionFile | None
    references: CaptionFile | None = None
    external: ExternalScores | None = None
    captioner: str | None = None  # a default captioner name (the model), when the file's layout tells it

    def require_references(self) -> CaptionFile:
        """The references, or an error saying the file holds none."""
        if self.references is None:
            raise InputError(f"this {self.format} file holds no reference captions; pass --refs", path=self.path)
        return self.references


def split_prefix(item: str) -> tuple[str | None, str]:
    """``"lmms:runs/x.jsonl"`` -> ``("lmms", "runs/x.jsonl")``; no known prefix -> ``(None, item)``.

    Example:
        >>> split_prefix("vlmeval:out/M_COCO_VAL.xlsx"), split_prefix("refs.json")
        (('vlmeval', 'out/M_COCO_VAL.xlsx'), (None, 'refs.json'))
    """
    match = _PREFIX.match(item)
    if match and not Path(item).exists():
        return match.group(1), match.group(2)
    return None, item


def _head(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(_SNIFF_BYTES)


def _is_lmms_record(obj: object) -> bool:
    return isinstance(obj, dict) and "doc_id" in obj and ("filtered_resps" in obj or "resps" in obj)


def sniff(path: str | Path) -> str | None:
    """The tool format of a file recognised from its content: ``"lmms"``, ``"vlmeval"``, ``"hf"`` or None."""
    p = Path(path)
    if p.is_dir():
        return "hf" if any((p / f).is_file() for f in ("dataset_dict.json", "state.json")) else None
    if not p.is_file():
        return None
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        return "hf"
    if suffix in (".xlsx", ".xls"):
        return "vlmeval"
    try:
        head = _head(p)
    except OSError:
        return None
    if suffix in (".jsonl", ".ndjson"):
        first = next((line for line in head.splitlines() if line.strip()), "")
        try:
            return "lmms" if _is_lmms_record(json.loads(first)) else None
        except json.JSONDecodeError:
            return None
    if suffix in (".tsv", ".csv"):
        header = head.splitlines()[0] if head else ""
        cells = {c.strip().strip('"') for c in re.split(r"[\t,]", header)}
        return "vlmeval" if {"index", "answer", "prediction"} <= cells else None
    if suffix == ".json":
        if '"doc_id"' in head and ('"filtered_resps"' in head or '"resps"' in head):
            return "lmms"
        if re.search(r'"prediction"\s*:', head) and re.search(r'"index"\s*:', head):
            return "vlmeval"
    return None


def read_tool_file(item: str | Path, role: Role, *, id_field: str | None = None,
                   text_field: str | None = None) -> ToolFile | None:
    """Read ``item`` (``[prefix:]path``) with its tool's reader, or None when it is not a tool file."""
    prefix, path = split_prefix(str(item))
    kind = prefix or sniff(path)
    if kind is None:
        return None
    if not Path(path).exists():
        raise InputError("file not found", path=path)
    if kind == "lmms":
        from capeval.io.lmms import read_lmms_samples

        return read_lmms_samples(path)
    if kind == "vlmeval":
        from capeval.io.vlmeval import read_vlmeval_predictions

        return read_vlmeval_predictions(path, id_field=id_field)
    from capeval.io.hf import read_hf_dataset

    return read_hf_dataset(path, role, id_field=id_field, text_field=text_field)


def shared_references(tool_files: dict[str, ToolFile]) -> CaptionFile:
    """The references the candidates' tool files hold, when ``--refs`` is not given: every file that holds
    references must hold the same ones (a file without any is an error: pass ``--refs``)."""
    if not tool_files:
        raise InputError("--refs is required (only lmms-eval and VLMEvalKit files hold their references)")
    chosen: CaptionFile | None = None
    for tool in tool_files.values():
        refs = tool.require_references()
        if chosen is None:
            chosen = refs
            continue
        for sid, texts in refs.captions.items():
            if sid in chosen.captions and chosen.captions[sid] != texts:
                raise InputError(f"its references differ from those in {chosen.path}; pass --refs",
                                 path=refs.path, sample_id=sid)
    assert chosen is not None
    if len(tool_files) > 1:
        merged = dict(chosen.captions)
        for tool in tool_files.values():
            for sid, texts in tool.require_references().captions.items():
                merged.setdefault(sid, texts)
        chosen = CaptionFile(chosen.path, merged, chosen.id_kind, dict(chosen.images), chosen.format)
    return chosen
