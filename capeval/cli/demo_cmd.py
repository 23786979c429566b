"""``capeval demo``: the main job on the bundled default (offline)."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("capeval-demo"), "--out", "-o", help="Folder for everything the demo writes."),
    images: int = typer.Option(48, "--images", help="Synthetic shapes test images to generate and score."),
    judge_images: int = typer.Option(8, "--judge-images", help="Images judged by the local LLM judge."),
    seeds: int = typer.Option(2, "--seeds", help="Seeds for the judge metrics (mean±std across seeds)."),
    no_judge: bool = typer.Option(False, "--no-judge", help="Skip the judge metrics (CLAIR, proxy QA)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Generate the shapes test set, caption it with the bundled MM-SeR baseline and a weak captioner, score with
    every metric that runs here, and write the run directory, HTML report and Markdown table.

    Example:
        capeval demo
        capeval demo --out /tmp/demo --images 100 --no-judge
    """
    from rich.console import Console

    from capeval.demo import run_demo

    console = Console(stderr=True)
    result = run_demo(out, n_images=images, judge_images=judge_images, seeds=seeds,
                      judge=False if no_judge else None, progress=False if quiet else None,
                      say=lambda msg: console.print(msg, highlight=False))
    print(result.table.read_text(encoding="utf-8"))
    for metric, why in result.skipped.items():
        console.print(f"skipped {metric}: {why}", highlight=False)
    console.print(f"run directory: {result.run_dir}" + (f" and {result.judge_run_dir}" if result.judge_run_dir else ""))
    console.print(f"table: {result.table}")
    console.print(f"report: {result.report.resolve()}  (open it in a browser)")
    console.print(f"done in {result.seconds:.0f} s")
