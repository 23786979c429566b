"""``capeval score``: score captioners against references and write a run directory."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from capeval.api import DEFAULT_METRICS, evaluate
from capeval.cli import app
from capeval.errors import CapevalError
from capeval.io.readers import CaptionFile, read_candidates, read_references


def parse_key_values(items: list[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}`` with a clear error for a malformed item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CapevalError(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def _coerce(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    from capeval.options import parse_bool

    try:
        return parse_bool(value) if value.strip() else value
    except CapevalError:
        return value


def flag_options(*, images, bertscore_model, bertscore_layer, judge_model, judge_base_url, judge_template,
                 judge_concurrency, no_cache, refresh_cache, judge_endpoints=None) -> dict:
    """The metric options set by the shared command-line flags (unset flags are left out)."""
    flags = {
        "images": str(images) if images else None,
        "bertscore_model": bertscore_model, "bertscore_layer": bertscore_layer,
        "judge_model": judge_model, "judge_base_url": judge_base_url,
        "judge_template": str(judge_template) if judge_template else None,
        "judge_concurrency": judge_concurrency,
        "judge_endpoints": str(judge_endpoints) if judge_endpoints else None,
        "cache": not no_cache, "refresh_cache": refresh_cache,
    }
    return {k: v for k, v in flags.items() if v is not None}


def load_candidate_args(cands: list[str], id_field, text_field, system_field) -> dict[str, CaptionFile]:
    """Turn ``--cand NAME=PATH`` (or ``--cand PATH`` with ``--system-field``) into caption files."""
    files: dict[str, CaptionFile] = {}
    for item in cands:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "", item
        if system_field:
            for sys_name, cf in read_candidates(path, id_field=id_field, text_field=text_field,
                                                system_field=system_field).items():
                full = f"{name}:{sys_name}" if name else str(sys_name)
                files[full] = cf
            continue
        if not name:
            name = Path(path).stem
        if name in files:
            raise CapevalError(f"captioner name {name!r} is given twice")
        files[name] = read_candidates(path, id_field=id_field, text_field=text_field)[None]
    return files


@app.command("score")
def score_command(
    refs: Path = typer.Option(..., "--refs", help="References: COCO annotations, JSON map, JSONL or CSV."),
    cand: list[str] = typer.Option(..., "--cand", help="Candidates as NAME=PATH (repeat for several captioners)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write."),
    metrics: str | None = typer.Option(
        None, "--metrics", "-m", help=f"Comma-separated metric names (default {','.join(DEFAULT_METRICS)})."),
    suite: str | None = typer.Option(None, "--suite", help="A metric suite from metrics/ (name or YAML path)."),
    seeds: int = typer.Option(1, "--seeds", help="Run stochastic metrics with seeds 0..N-1."),
    id_field: str | None = typer.Option(None, "--id-field", help="Id field/column of the candidate files."),
    text_field: str | None = typer.Option(None, "--text-field", help="Caption field/column of the candidates."),
    ref_id_field: str | None = typer.Option(None, "--ref-id-field", help="Id field/column of the references."),
    ref_text_field: str | None = typer.Option(None, "--ref-text-field", help="Text field of the references."),
    system_field: str | None = typer.Option(
        None, "--system-field", help="Field naming the captioner when one file holds several (e.g. SYS)."),
    option: list[str] = typer.Option([], "--option", help="Metric option KEY=VALUE (repeatable)."),
    images: Path | None = typer.Option(None, "--images", help="Folder of images (for image-based metrics)."),
    bertscore_model: str | None = typer.Option(None, "--bertscore-model", help="BERTScore model id or path."),
    bertscore_layer: int | None = typer.Option(None, "--bertscore-layer", help="BERTScore layer."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Judge model name at the endpoint."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="OpenAI-compatible base URL."),
    judge_template: Path | None = typer.Option(None, "--judge-template", help="Jinja2 prompt template file."),
    judge_concurrency: int | None = typer.Option(None, "--judge-concurrency", help="Concurrent judge requests."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the judge cache."),
    refresh_cache: bool = typer.Option(False, "--refresh-cache", help="Ignore cached replies, overwrite them."),
    judge_endpoints: Path | None = typer.Option(
        None, "--judge-endpoints", help="YAML file of several endpoints serving the judge model (routing, failover)."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (sharded over Ray workers)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default RAY_ADDRESS, else a new local instance)."),
    workers: int | None = typer.Option(None, "--workers", help="Ray workers (default: the cluster's CPUs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Write into an --out that holds other files (capeval's files are replaced)."),
) -> None:
    """Score captioners against references; write manifest.json, scores.parquet and summary.json to --out.

    Example:
        capeval score --refs refs.json --cand mine=mine.json --cand base=base.json --out runs/r1
        capeval score --refs mscoco_references.jsonl --cand mscoco_THumB-1.0.jsonl --system-field SYS --out runs/thumb
        capeval score --refs refs.json --cand mine=mine.jsonl --out runs/r2 --engine ray --workers 8
    """
    if suite and metrics is not None:
        raise CapevalError("--suite and --metrics both choose the metrics: give one of them")
    metric_names = [m.strip() for m in (metrics or ",".join(DEFAULT_METRICS)).split(",") if m.strip()]
    options = {k: _coerce(v) for k, v in parse_key_values(option, "--option").items()}
    suite_info = None
    if suite:
        from capeval.suites import load_suite

        doc = load_suite(suite)
        metric_names = list(doc["metrics"])
        options = {**doc["options"], **options}
        suite_info = {"name": doc.get("name", suite), "version": (doc.get("metadata") or {}).get("version"),
                      "path": doc["path"]}
    options.update(flag_options(
        images=images, bertscore_model=bertscore_model, bertscore_layer=bertscore_layer, judge_model=judge_model,
        judge_base_url=judge_base_url, judge_template=judge_template, judge_concurrency=judge_concurrency,
        no_cache=no_cache, refresh_cache=refresh_cache, judge_endpoints=judge_endpoints))
    options.setdefault("run_dir", str(out))
    from capeval.api import build_metrics

    built = build_metrics(metric_names, {"seeds": seeds, **options})  # fail before any input is read
    references = read_references(refs, id_field=ref_id_field, text_field=ref_text_field)
    candidates = load_candidate_args(cand, id_field, text_field, system_field)
    from capeval.rundir import check_out_dir

    check_out_dir(out, inputs=[refs, *(Path(cf.path) for cf in candidates.values())], overwrite=overwrite)
    results = evaluate(references, candidates, built, seeds=seeds, options=options,
                       progress=False if quiet else None, engine=engine, ray_address=ray_address, workers=workers)
    results.suite = suite_info
    results.write(out, command=["capeval", *sys.argv[1:]], overwrite=overwrite)
    if not quiet:
        print_summary(results.summary, out)


def print_summary(summary, out: Path) -> None:
    """A compact leaderboard on the terminal."""
    from rich.console import Console
    from rich.table import Table

    pivot = summary.pivot(index="captioner", columns="metric", values="mean")
    table = Table(title=f"capeval · {out}")
    table.add_column("captioner")
    for col in pivot.columns:
        table.add_column(col, justify="right")
    for name, row in pivot.iterrows():
        table.add_row(str(name), *(f"{v:.4f}" for v in row))
    Console(stderr=False).print(table)
