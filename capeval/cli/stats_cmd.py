"""``capeval stats``: bootstrap CIs, paired tests and significance ranks of a run, written to stats.json."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app


@app.command("stats")
def stats_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `capeval score`."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples over images."),
    n_perm: int = typer.Option(5000, "--n-perm", help="Permutations of each paired test (exact when 2^n <= this)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resampling (results are reproducible by seed)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level; CIs are 1 - alpha."),
    refresh: bool = typer.Option(False, "--refresh", help="Recompute even when stats.json is up to date."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing."),
) -> None:
    """Write RUN_DIR/stats.json: 95% bootstrap CIs (corpus metrics recomputed per resample), paired permutation
    tests between every pair of captioners with Holm's correction, and ranks that tie non-significant differences.

    Example:
        capeval stats runs/thumb
        capeval stats runs/thumb --n-boot 5000 --seed 1
    """
    from capeval.stats import STATS_FILE, load_or_compute_stats

    doc = load_or_compute_stats(run_dir, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha, refresh=refresh)
    if not quiet:
        _print(doc, run_dir / STATS_FILE)


def _print(doc: dict, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    level = round(100 * (1 - doc["params"]["alpha"]))
    for metric, entry in doc["metrics"].items():
        table = Table(title=f"{metric} · {entry['method']}", title_justify="left")
        for col in ("rank", "captioner", "value", f"{level}% CI", "n"):
            table.add_column(col, justify="left" if col == "captioner" else "right")
        for cap in entry["ranking"] or list(entry["captioners"]):
            c = entry["captioners"][cap]
            ci = (f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}]" if c["ci_low"] is not None and c["ci_high"] is not None
                  else "–")
            value = f"{c['value']:.4f}" if c["value"] is not None else "–"
            rank = "–" if c["rank"] is None else str(c["rank"])
            table.add_row(rank, cap, value, ci, str(c["n"]))
        console.print(table)
    for warning in doc.get("warnings", []):
        console.print(f"warning: {warning}", markup=False)
    console.print(f"wrote {path}", markup=False)
