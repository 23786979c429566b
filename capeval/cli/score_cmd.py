"""``capeval score``: score captioners against references and write a run directory."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from capeval.api import DEFAULT_METRICS, evaluate
from capeval.cli import app
from capeval.errors import CapevalError
from capeval.io.detect import ToolFile, read_tool_file, shared_references, split_prefix
from capeval.io.readers import CaptionFile, read_candidates, read_references
from capeval.judges.failures import DEFAULT_MAX_FAILURE_RATE


def parse_key_values(items: list[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}`` with a clear error for a malformed item."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CapevalError(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def parse_options(items: list[str]) -> dict:
    """``--option KEY=VALUE`` items -> typed options; an option named like a secret is refused."""
    from capeval.secrets import refuse_secret_options

    options = {k: _coerce(v) for k, v in parse_key_values(items, "--option").items()}
    refuse_secret_options(options)
    return options


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


def load_candidate_args(cands: list[str], id_field, text_field, system_field,
                        tool_files: dict[str, ToolFile] | None = None) -> dict[str, CaptionFile]:
    """Turn ``--cand NAME=PATH`` (or ``--cand PATH`` with ``--system-field``) into caption files.

    PATH may carry a tool prefix (``lmms:``, ``vlmeval:``, ``hf:``) or be recognised as such a tool's file;
    those files are also collected in ``tool_files`` (their references and the tool's own scores). A captioner
    name given twice (by two ``--cand`` or by two files' ``--system-field`` values) is an error naming both
    files: one of them would otherwise be dropped.
    """
    files: dict[str, CaptionFile] = {}

    def add(name: str, cf: CaptionFile, how: str) -> None:
        if name in files:
            raise CapevalError(f"captioner name {name!r} {how} in both {files[name].path} and {cf.path}; "
                               "give each file its own name with --cand NAME=PATH")
        files[name] = cf

    for item in cands:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "", item
        if system_field:
            for sys_name, cf in read_candidates(path, id_field=id_field, text_field=text_field,
                                                system_field=system_field).items():
                add(f"{name}:{sys_name}" if name else str(sys_name), cf, f"(from --system-field {system_field}) is")
            continue
        tool = read_tool_file(path, "candidates", id_field=id_field, text_field=text_field)
        if not name:
            name = (tool.captioner if tool else None) or Path(split_prefix(path)[1]).stem
        if tool is not None:
            add(name, tool.candidates, "is given")
            if tool_files is not None:
                tool_files[name] = tool
            continue
        add(name, read_candidates(path, id_field=id_field, text_field=text_field)[None], "is given")
    return files


@app.command("score")
def score_command(
    refs: str | None = typer.Option(
        None, "--refs", help="References: COCO annotations, JSON map, JSONL, CSV, hf:DATASET. Optional when the "
        "candidates are lmms-eval/VLMEvalKit files holding the references."),
    cand: list[str] = typer.Option(..., "--cand", help="Candidates as NAME=PATH (repeat for several captioners); "
                                   "PATH may be lmms:FILE, vlmeval:FILE or hf:DATASET."),
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
    max_failure_rate: float = typer.Option(
        DEFAULT_MAX_FAILURE_RATE, "--max-failure-rate",
        help="Exit 3 when more than this share of an LLM judge's judgments failed (0-1)."),
) -> None:
    """Score captioners against references; write manifest.json, scores.parquet and summary.json to --out.

    Exit codes: 0 success; 2 usage or input error; 3 the run was written but an LLM judge failed: some judge
    metric got no successful judgment, or more than --max-failure-rate of its judgments failed (the message
    names the endpoint and the failure kinds). Judge failures are always summed up in one line on stderr.

    Example:
        capeval score --refs refs.json --cand mine=mine.json --cand base=base.json --out runs/r1
        capeval score --refs mscoco_references.jsonl --cand mscoco_THumB-1.0.jsonl --system-field SYS --out runs/thumb
        capeval score --cand lmms:out/llava/20250101_120000_samples_coco2014_cap_val.jsonl --out runs/lmms
        capeval score --cand vlmeval:outputs/llava/llava_COCO_VAL.xlsx --out runs/vlmeval
        capeval score --refs refs.json --cand mine=mine.jsonl --out runs/r2 --engine ray --workers 8
    """
    if not 0 <= max_failure_rate <= 1:
        raise CapevalError(f"--max-failure-rate must be between 0 and 1, got {max_failure_rate:g}")
    if suite and metrics is not None:
        raise CapevalError("--suite and --metrics both choose the metrics: give one of them")
    metric_names = [m.strip() for m in (metrics or ",".join(DEFAULT_METRICS)).split(",") if m.strip()]
    options = parse_options(option)
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
    tools: dict[str, ToolFile] = {}
    candidates = load_candidate_args(cand, id_field, text_field, system_field, tools)
    if refs is None:
        references = shared_references(tools)
    else:
        references = read_references(refs, id_field=ref_id_field, text_field=ref_text_field)
    from capeval.rundir import check_out_dir

    input_files = [Path(p) for p in (references.path, *(cf.path for cf in candidates.values())) if Path(p).is_file()]
    check_out_dir(out, inputs=input_files, overwrite=overwrite)
    results = evaluate(references, candidates, built, seeds=seeds, options=options,
                       progress=False if quiet else None, engine=engine, ray_address=ray_address, workers=workers)
    from capeval.api import input_sha256

    results.inputs["references"]["path"] = references.path
    results.inputs["references"]["sha256"] = input_sha256(references)
    for name, cf in candidates.items():
        results.inputs["candidates"][name] = {"path": cf.path, "sha256": input_sha256(cf)}
    if any(tool.external is not None for tool in tools.values()):
        from capeval.external import compare_external

        results.external = compare_external(tools, results)
    results.suite = suite_info
    results.write(out, command=["capeval", *sys.argv[1:]], overwrite=overwrite)
    if not quiet:
        print_summary(results.summary, out)
        if results.external:
            from rich.console import Console

            from capeval.external import external_table

            Console().print(external_table(results.external))
    judge_gate(results.usage, options, max_failure_rate, out)


def judge_gate(usage: dict, options: dict, max_failure_rate: float, out: Path) -> None:
    """Print the one-line judge-failure account (if any) and exit 3 when a judge metric failed the gate."""
    from capeval.judges.failures import EXIT_JUDGE_FAILED, endpoint_label, failure_line, gate_problems, judge_failures
    from capeval.secrets import redact_text

    accounts = judge_failures(usage)
    endpoint = redact_text(endpoint_label(options))
    line = failure_line(accounts, endpoint)
    if line is None:
        return
    print(f"capeval: {line}", file=sys.stderr)
    problems = gate_problems(accounts, max_failure_rate)
    if problems:
        print(f"capeval: error: judge endpoint {endpoint} failed: {'; '.join(problems)} (run written to {out}; "
              f"exit {EXIT_JUDGE_FAILED})", file=sys.stderr)
        raise typer.Exit(EXIT_JUDGE_FAILED)


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
