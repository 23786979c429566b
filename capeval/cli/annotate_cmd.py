"""``capeval annotate``: per-row metric columns for a big caption table (parquet or JSONL), with ``--keep``."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app
from capeval.io.chunks import DEFAULT_CHUNK_ROWS


@app.command("annotate")
def annotate_command(
    input_path: Path = typer.Argument(..., help="Rows to score: a .parquet or .jsonl file (read in chunks)."),
    metrics: str = typer.Option(..., "--metrics", "-m", help="Comma-separated metric names."),
    out: Path = typer.Option(..., "--out", "-o", help="Output parquet: the input rows plus one column per output."),
    ref_field: str | None = typer.Option(None, "--ref-field", help="List column with each row's references."),
    refs: Path | None = typer.Option(None, "--refs", help="References file joined on the rows' id column instead."),
    text_field: str | None = typer.Option(None, "--text-field", help="Column with the caption to score."),
    id_field: str | None = typer.Option(None, "--id-field", help="Id column (to join --refs)."),
    keep: str | None = typer.Option(None, "--keep", help="Write only rows that pass, e.g. 'clair>=0.6'."),
    chunk_rows: int = typer.Option(DEFAULT_CHUNK_ROWS, "--chunk-rows", help="Rows read and scored at a time."),
    option: list[str] = typer.Option([], "--option", help="Metric option KEY=VALUE (repeatable)."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Judge model name at the endpoint."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="OpenAI-compatible base URL."),
    judge_endpoints: Path | None = typer.Option(None, "--judge-endpoints", help="YAML file of judge endpoints."),
    judge_concurrency: int | None = typer.Option(None, "--judge-concurrency", help="Concurrent judge requests."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the judge cache."),
    engine: str = typer.Option("local", "--engine", help="local or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join."),
    workers: int | None = typer.Option(None, "--workers", help="Ray workers (default: the cluster's CPUs)."),
) -> None:
    """Score every row of a caption table and write it with the scores appended (dataset curation).

    Example:
        capeval annotate captions.parquet --metrics cider,rouge_l --out scored.parquet
        capeval annotate pool.jsonl --metrics clair --judge-endpoints eps.yaml --keep 'clair>=0.6' --out kept.parquet
    """
    from capeval.annotate import annotate
    from capeval.cli.score_cmd import _coerce, flag_options, parse_key_values

    options = {k: _coerce(v) for k, v in parse_key_values(option, "--option").items()}
    options.update(flag_options(
        images=None, bertscore_model=None, bertscore_layer=None, judge_model=judge_model,
        judge_base_url=judge_base_url, judge_template=None, judge_concurrency=judge_concurrency,
        no_cache=no_cache, refresh_cache=False, judge_endpoints=judge_endpoints))
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    result = annotate(input_path, names, out, refs=refs, ref_field=ref_field, text_field=text_field,
                      id_field=id_field, keep=keep, options=options, chunk_rows=chunk_rows, engine=engine,
                      ray_address=ray_address, workers=workers)
    failed = "".join(f", {n} {k} failed" for k, n in result.failures.items())
    typer.echo(f"annotate: {result.rows_in} rows scored, {result.rows_out} written to {result.path} "
               f"(columns {', '.join(result.columns)}{failed})")
