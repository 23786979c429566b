"""``capeval meta-eval``: how well each metric agrees with human judgments (Flickr8k, Pascal-50S, THumB)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from capeval.cli import app
from capeval.errors import CapevalError

# Columns of the table per dataset family: (field, header).
_COLUMNS = {
    "flickr8k": [("tau_b", "τ_b"), ("tau_c", "τ_c"), ("tau_c_ci", "τ_c 95% CI"), ("n", "rows"),
                 ("failed", "failed")],
    "pascal-50s": [("HC", "HC"), ("HI", "HI"), ("HM", "HM"), ("MM", "MM"), ("accuracy", "mean"),
                   ("accuracy_ci", "mean 95% CI"), ("ties", "ties"), ("n", "pairs"), ("failed", "failed")],
    "thumb": [("pearson", "r"), ("kendall", "τ_b"), ("pearson_machine", "r (no Human)"),
              ("system_pearson", "sys r"), ("system_pearson_machine", "sys r (no Human)"),
              ("n", "rows"), ("failed", "failed")],
}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list) and len(value) == 2:
        return f"[{_cell(value[0])}, {_cell(value[1])}]"
    if isinstance(value, float):
        return f"{value:.1f}" if math.isfinite(value) else "–"
    return str(value)


def print_table(dataset: str, results: dict[str, dict[str, Any]], source: str) -> None:
    """A rich table of the meta-evaluation, one row per metric output."""
    from rich.console import Console
    from rich.table import Table

    family = "flickr8k" if dataset.startswith("flickr8k") else dataset
    columns = _COLUMNS[family]
    table = Table(title=f"capeval meta-eval · {dataset} · {source}", caption="correlations and accuracies x100")
    table.add_column("metric")
    for _, header in columns:
        table.add_column(header, justify="right")
    for output, fields in results.items():
        table.add_row(output, *(_cell(fields.get(key)) for key, _ in columns))
    console = Console()
    console.print(table)
    for output, fields in results.items():
        cost = fields.get("cost")
        if cost:
            usd = f", ${cost['cost_usd']:.4f}" if "cost_usd" in cost else ", cost unknown (not in the price table)"
            console.print(f"{output}: {int(cost.get('judge_calls', 0))} judge calls, "
                          f"{int(cost.get('judge_cache_hits', 0))} cache hits, "
                          f"{int(cost.get('prompt_tokens', 0))} prompt tokens "
                          f"({int(cost.get('cached_prompt_tokens', 0))} served from the prefix cache), "
                          f"{int(cost.get('completion_tokens', 0))} completion tokens{usd}, {cost['seconds']:g} s",
                          markup=False)


@app.command("meta-eval")
def metaeval_command(
    dataset: str = typer.Argument(..., help="flickr8k-expert, flickr8k-cf, pascal-50s or thumb."),
    path: Path | None = typer.Option(None, "--path", help="The corpus file (THumB: the scores JSONL)."),
    refs: Path | None = typer.Option(None, "--refs", help="THumB references JSONL (default: beside --path)."),
    metrics: str = typer.Option("bleu,meteor,rouge_l,cider", "--metrics", "-m", help="Comma-separated metrics."),
    as_json: bool = typer.Option(False, "--json", help="Print {METRIC: {fields}} as JSON instead of a table."),
    download: bool = typer.Option(False, "--download", help="Fetch the public files first (needs internet)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where --download puts files."),
    seeds: int = typer.Option(1, "--seeds", help="Runs of each stochastic metric; scores are averaged."),
    limit: int | None = typer.Option(None, "--limit", help="Score a seeded subset: Flickr8k >= N rows (whole "
                                     "images), Pascal-50S N pairs (stratified by category)."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the --limit subset (and of the bootstrap)."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", help="Bootstrap resamples for 95%% CIs "
                                         "(default 1000 for judge metrics, 0 for the others)."),
    option: list[str] = typer.Option([], "--option", help="Metric option KEY=VALUE (repeatable)."),
    images: Path | None = typer.Option(None, "--images", help="Images folder (for image-based metrics)."),
    bertscore_model: str | None = typer.Option(None, "--bertscore-model", help="BERTScore model id or path."),
    bertscore_layer: int | None = typer.Option(None, "--bertscore-layer", help="BERTScore layer."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Judge model name at the endpoint."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="OpenAI-compatible base URL."),
    judge_template: Path | None = typer.Option(None, "--judge-template", help="Jinja2 prompt template file."),
    judge_concurrency: int | None = typer.Option(None, "--judge-concurrency", help="Concurrent judge requests."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the judge cache."),
    refresh_cache: bool = typer.Option(False, "--refresh-cache", help="Ignore cached replies, overwrite them."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Measure how well metrics agree with human judgments, as the caption-metric literature reports it.

    Flickr8k: Kendall τ_b and τ_c over all rated rows. Pascal-50S: pairwise accuracy per category (HC, HI, HM,
    MM) and their mean. THumB: segment- and system-level Pearson / Kendall. Judge metrics go through the judge
    cache, so an interrupted run resumes where it stopped.

    Example:
        capeval meta-eval flickr8k-expert --path ../shared/data/human-judgments/flickr8k_expert.json
        capeval meta-eval pascal-50s --path pascal_50s.json --metrics cider,bertscore --json
        capeval meta-eval thumb --path mscoco_THumB-1.0.jsonl --refs mscoco_references.jsonl
        capeval meta-eval flickr8k-expert --download --metrics clair --judge-model gpt-4o-mini
        capeval meta-eval pascal-50s --path pascal_50s.json --metrics clair --limit 400 --sample-seed 0
            --judge-base-url http://127.0.0.1:8080/v1 --judge-model smollm2 --option judge_scoring=likelihood
    """
    from capeval.cli.score_cmd import flag_options, parse_options
    from capeval.metaeval import canonical_dataset, meta_evaluate

    name = canonical_dataset(dataset)
    if download:
        from capeval.metaeval.download import download as fetch

        if path is not None:
            raise CapevalError("--download picks the file itself; give --data-dir instead of --path")
        files = fetch(name, data_dir)
        path = files[0]
        if name == "thumb" and refs is None:
            refs = files[1]
    if path is None:
        raise CapevalError("give the corpus file with --path FILE (or fetch it with --download)")
    metric_names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not metric_names:
        raise CapevalError("--metrics is empty")
    options: dict[str, Any] = parse_options(option)
    options.update(flag_options(
        images=images, bertscore_model=bertscore_model, bertscore_layer=bertscore_layer, judge_model=judge_model,
        judge_base_url=judge_base_url, judge_template=judge_template, judge_concurrency=judge_concurrency,
        no_cache=no_cache, refresh_cache=refresh_cache))
    results = meta_evaluate(name, path, metric_names, options, refs=refs, seeds=seeds,
                            progress=False if quiet else None, limit=limit, sample_seed=sample_seed,
                            bootstrap=bootstrap)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    print_table(name, results, str(path))
