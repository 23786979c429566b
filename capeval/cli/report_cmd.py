"""``capeval report``: a self-contained HTML report of one or more run directories."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app


@app.command("report")
def report_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories written by `capeval score`."),
    out: Path = typer.Option(..., "--out", "-o", help="HTML file to write."),
    images: Path | None = typer.Option(None, "--images", help="Folder of images: thumbnails in the sample browser."),
    title: str | None = typer.Option(None, "--title", help="Report title (default: the run names)."),
    page_size: int = typer.Option(20, "--page-size", help="Samples per page in the sample browser."),
    template: Path | None = typer.Option(None, "--template", help="Your own Jinja2 report template."),
    no_stats: bool = typer.Option(False, "--no-stats", help="Skip confidence intervals, tests and ranks."),
) -> None:
    """Write one self-contained HTML file (no network needed): leaderboard with CIs and ranks, charts, pairwise
    matrix, judge usage, manifest and a searchable per-sample browser. Runs with the same references and
    metric signatures are merged into one leaderboard; others get their own section.

    Example:
        capeval report runs/thumb -o report.html --images coco/val2014
        capeval report runs/baseline runs/mine -o compare.html
    """
    from capeval.report import build_report

    path = build_report(run_dirs, out, images_dir=images, title=title, template=template, page_size=page_size,
                        stats=not no_stats)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
