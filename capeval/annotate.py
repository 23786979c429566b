"""``capeval annotate``: score every row of a big caption table and write it back with one column per output.

For dataset curation in the style of re-captioning pipelines (Recap-DataComp, CapFlow): the input (parquet or
JSONL) is read in chunks of rows, each chunk is scored by a :class:`capeval.engine.shards.ShardWorker` (metrics
set up once for the whole file, or once per Ray worker with ``engine="ray"``), and the rows are written to the
output parquet with the metric outputs appended, optionally only those passing ``--keep``. Memory holds a few
chunks at a time, whatever the file's size.

Each row is one sample: its candidate is the caption column, its references a list column of the same row or
the ``--refs`` file's entry for the row's id. Per-row values are the ones ``capeval score`` gives for that
sample; CIDEr-D's document frequencies come from every row's references (a first pass over the file), as a
``capeval score`` run over the same rows has them (BERTScore and CAPTURE, scored chunk by chunk, agree with
``score`` to about 1e-7: their float32 encoders depend on batch shapes). Blank references are dropped; a row
left with none, when a metric needs references, is an error naming the file and the row.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from capeval.api import build_metrics
from capeval.engine.shards import Shard, cider_doc_counts, merge_counts, merge_frequencies, shard_rule
from capeval.errors import InputError
from capeval.filters import KeepFilter, check_columns, parse_keep
from capeval.io.chunks import DEFAULT_CHUNK_ROWS, Fields, iter_chunks, pick_fields, schema_of
from capeval.io.readers import read_references
from capeval.text import normalize_whitespace

log = logging.getLogger("capeval")

CAPTIONER = "annotate"


@dataclass
class AnnotateResult:
    """What an annotate run did: rows read and written, the columns added, failures per output."""

    path: Path
    rows_in: int
    rows_out: int
    columns: list[str]
    fields: Fields
    chunks: int
    failures: dict[str, int] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)


def _texts(table: pa.Table, column: str | None) -> list[Any] | None:
    return table.column(column).to_pylist() if column is not None else None


def _chunk_inputs(table: pa.Table, offset: int, fields: Fields, ref_map: dict[str, list[str]] | None,
                  need_refs: bool, path: str) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """(row ids, candidates, references) of one chunk, normalised; row ids are 1-based row numbers."""
    cands = _texts(table, fields.text)
    refs_col = _texts(table, fields.refs)
    ids_col = _texts(table, fields.id)
    row_ids = [str(offset + i + 1) for i in range(table.num_rows)]
    candidates: dict[str, str] = {}
    references: dict[str, list[str]] = {}
    for i, rid in enumerate(row_ids):
        text = cands[i]  # type: ignore[index]
        candidates[rid] = normalize_whitespace(text) if isinstance(text, str) else ""
        if refs_col is not None:
            raw = refs_col[i] or []
        elif ref_map is not None:
            key = str(ids_col[i])  # type: ignore[index]
            if key not in ref_map:
                raise InputError(f"row {rid}: id {key!r} has no references in the --refs file", path=path)
            raw = ref_map[key]
        else:
            raw = []
        kept = [t for t in (normalize_whitespace(x) for x in raw if isinstance(x, str)) if t]
        if need_refs and not kept:
            raise InputError(f"row {rid}: no references (the list is empty or blank)", path=path)
        references[rid] = kept
    return row_ids, candidates, references


def _cider_frequencies(path: str, rows: int, fields: Fields, ref_map, need_refs: bool,
                       native: bool = True) -> tuple[Any, int]:
    """First pass for CIDEr-D: document frequencies over every row's references (native
    :class:`~capeval.metrics.native.ngram_keys.DocCounts`, or pycocoevalcap's n-gram tuples when not ``native``)."""
    from capeval.metrics.native import encode
    from capeval.metrics.native.ngram_keys import DocCounts
    from capeval.tokenizers.ptb import tokenize_ptb

    parts: list[Any] = []
    docs = 0
    for offset, table in iter_chunks(path, rows):
        _, _, references = _chunk_inputs(table.select([c for c in {fields.text, fields.refs, fields.id} if c]),
                                         offset, fields, ref_map, need_refs, path)
        tok = tokenize_ptb({r: None for refs in references.values() for r in refs})
        refs_tokens = [[tok[r] for r in refs] for refs in references.values()]
        if native:
            parts.append(DocCounts.of_table(encode([""] * len(refs_tokens), refs_tokens)))
        else:
            parts.append(cider_doc_counts(refs_tokens))
        docs += len(references)
        if len(parts) > 8:
            parts = [merge_frequencies(parts) if native else Counter(merge_counts(parts))]
    return merge_frequencies(parts), docs


class _LocalRunner:
    def __init__(self, names, options) -> None:
        from capeval.engine.shards import ShardWorker

        self.worker = ShardWorker(names, options, 1)
        self.names = list(names)
        self.workers = 1

    def map(self, shards: Iterator[Shard], cider: tuple[dict, int] | None) -> Iterator[tuple[dict, dict | None]]:
        for shard in shards:
            first = self.worker.run(shard, self.names)  # every metric per chunk
            second = self.worker.cider(shard, {CAPTIONER: cider[0]}, {CAPTIONER: cider[1]}) if cider else None
            yield first, second

    def close(self) -> None:
        self.worker.close()


class _RayRunner:
    def __init__(self, names, options, address, workers) -> None:
        from capeval.engine.ray_engine import _worker_options
        from capeval.engine.ray_setup import start_ray
        from capeval.engine.shards import ShardWorker

        self.session = start_ray(address, num_cpus=workers)
        import ray

        from capeval.api import build_metrics
        from capeval.engine.cache_service import RemoteCache
        from capeval.engine.ray_engine import RESTARTS, _judge_cache_actor

        self.ray = ray
        self.workers = workers or max(1, int(self.session.num_cpus))
        made = _judge_cache_actor(ray, build_metrics(names, options), options)  # one cache writer for all
        self.cache_actor = made[0] if made else None
        shared = {"judge_cache": RemoteCache(*made)} if made else {}
        cls = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(ShardWorker)
        self.actors = [cls.remote(names, _worker_options(options), 1, shared) for _ in range(self.workers)]
        self.names = list(names)

    def map(self, shards: Iterator[Shard], cider: tuple[dict, int] | None) -> Iterator[tuple[dict, dict | None]]:
        from capeval.engine.ray_engine import _get

        ray = self.ray
        df_ref = ray.put({CAPTIONER: cider[0]}) if cider else None
        window: list[tuple[Any, Any]] = []
        for shard in shards:  # at most two chunks per worker in flight: memory stays bounded
            actor = self.actors[shard.index % self.workers]
            stored = ray.put(shard)
            first = actor.run.remote(stored, self.names)  # every metric per chunk
            second = actor.cider.remote(stored, df_ref, {CAPTIONER: cider[1]}) if cider else None
            window.append((first, second))
            if len(window) >= 2 * self.workers:
                f, s = window.pop(0)
                yield _get(ray, f), (_get(ray, s) if s is not None else None)
        for f, s in window:
            yield _get(ray, f), (_get(ray, s) if s is not None else None)

    def close(self) -> None:
        import contextlib

        from capeval.engine.ray_setup import stop_ray

        for actor in [*self.actors, *([self.cache_actor] if self.cache_actor is not None else [])]:
            with contextlib.suppress(Exception):
                self.ray.get(actor.close.remote(), timeout=60)
        stop_ray(self.session)


def annotate(
    input_path: str | Path,
    metrics: Sequence[str],
    out: str | Path,
    *,
    refs: str | Path | None = None,
    ref_field: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    keep: str | KeepFilter | None = None,
    options: dict[str, Any] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> AnnotateResult:
    """Score every row of ``input_path`` and write the rows (those passing ``keep``) plus metric columns to ``out``.

    Example:
        >>> import pandas as pd, tempfile, os
        >>> d = tempfile.mkdtemp(); src = os.path.join(d, "rows.parquet")
        >>> pd.DataFrame({"caption": ["a cat on a mat", "a dog"], "refs": [["a cat sits on a mat"], ["a cat"]]}
        ...              ).to_parquet(src)
        >>> r = annotate(src, ["rouge_l"], os.path.join(d, "out.parquet"), keep="rouge_l>=0.6")
        >>> r.rows_in, r.rows_out, r.columns
        (2, 1, ['rouge_l'])
    """
    import pyarrow.parquet as pq

    path = str(input_path)
    if chunk_rows < 1:
        raise InputError(f"chunk rows must be >= 1, got {chunk_rows}")
    options = dict(options or {})
    options.setdefault("seeds", 1)
    metric_objs = build_metrics(metrics, options)
    for metric in metric_objs:
        shard_rule(metric)
    need_refs = any("references" in m.needs for m in metric_objs)
    schema = schema_of(path)
    fields = pick_fields(schema, path, text_field=text_field, ref_field=ref_field, id_field=id_field,
                         need_refs=need_refs and refs is None)
    ref_map = None
    if refs is not None:
        if fields.refs is not None:
            raise InputError("give references either as a list column (--ref-field) or as --refs FILE, not both")
        if fields.id is None:
            raise InputError(f"--refs needs an id column to join on; columns are {schema.names}; pass --id-field",
                             path=path)
        ref_map = read_references(refs).captions
    if need_refs and fields.refs is None and ref_map is None:
        raise InputError(f"metrics {', '.join(m.name for m in metric_objs if 'references' in m.needs)} need "
                         f"references: no list-of-strings column found among {schema.names}; name it with "
                         "--ref-field or give --refs FILE", path=path)
    outputs = [k for m in metric_objs for k in m.outputs]
    clash = [k for k in outputs if k in schema.names]
    if clash:
        raise InputError(f"the input already has column(s) {clash}; rename them or drop those metrics", path=path)
    keep_filter = parse_keep(keep) if isinstance(keep, str) else keep
    if keep_filter is not None:
        check_columns(keep_filter, [*schema.names, *outputs])
    cider = None
    cider_metric = next((m for m in metric_objs if shard_rule(m) == "cider"), None)
    if cider_metric is not None:
        cider = _cider_frequencies(path, chunk_rows, fields, ref_map, need_refs,
                                   native=getattr(cider_metric, "impl", "native") == "native")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    runner = (_RayRunner([m.name for m in metric_objs], options, ray_address, workers) if engine == "ray"
              else _LocalRunner([m.name for m in metric_objs], options))
    tables: list[pa.Table] = []

    def shards() -> Iterator[Shard]:
        for k, (offset, table) in enumerate(iter_chunks(path, chunk_rows)):
            _, cands, references = _chunk_inputs(table, offset, fields, ref_map, need_refs, path)
            tables.append(table)
            yield Shard(k, references, {CAPTIONER: cands})

    rows_in = rows_out = chunks = 0
    failures = dict.fromkeys(outputs, 0)
    usage: dict[str, float] = {}
    writer: pq.ParquetWriter | None = None
    out_schema: pa.Schema | None = None
    try:
        for first, second in runner.map(shards(), cider):
            table = tables.pop(0)
            chunks += 1
            rows_in += table.num_rows
            for metric in metric_objs:
                if shard_rule(metric) == "cider":
                    values = {"cider": second[CAPTIONER]}  # type: ignore[index]
                else:
                    piece = first["pieces"][(metric.name, CAPTIONER, 0)]
                    values = piece.values
                    for k, v in piece.usage.items():
                        usage[k] = usage.get(k, 0) + v
                for key in metric.outputs:
                    arr = np.asarray(values[key], dtype=float)
                    failures[key] += int(np.isnan(arr).sum())
                    table = table.append_column(key, pa.array(arr, type=pa.float64()))
            if keep_filter is not None:
                table = table.filter(pa.array(keep_filter.mask(table.select(keep_filter.columns).to_pandas())))
            if out_schema is None:
                out_schema = table.schema
                writer = pq.ParquetWriter(tmp, out_schema)
            elif table.schema != out_schema:
                try:
                    table = table.cast(out_schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                    raise InputError(f"rows near row {rows_in} have other column types than the first rows "
                                     f"({exc})", path=path) from None
            assert writer is not None
            writer.write_table(table)
            rows_out += table.num_rows
            log.info("annotate: %d rows scored, %d kept", rows_in, rows_out)
    except BaseException:
        if writer is not None:
            writer.close()
            writer = None
        tmp.unlink(missing_ok=True)  # no half-written output is ever left under any name
        raise
    finally:
        runner.close()
        if writer is not None:
            writer.close()
    if writer is None:
        raise InputError("no rows", path=path)
    os.replace(tmp, out)
    return AnnotateResult(out, rows_in, rows_out, outputs, fields, chunks,
                          {k: v for k, v in failures.items() if v}, usage)
