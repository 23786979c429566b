"""``capeval table``: a paper table of a run in LaTeX (booktabs), Markdown or CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app
from capeval.errors import CapevalError


@app.command("table")
def table_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `capeval score`."),
    fmt: str = typer.Option("markdown", "--format", "-f", help="latex, markdown or csv."),
    metrics: str | None = typer.Option(None, "--metrics", "-m",
                                       help="Comma-separated metrics, in column order (bleu = bleu_1..bleu_4)."),
    spread: str = typer.Option(
        "auto", "--spread",
        help="auto: ± std over seeds for multi-seed metrics, nothing for single-seed ones; ci: ± half-width of "
             "the 95% bootstrap CI (from stats.json, computed if needed); none: means only."),
    digits: int | None = typer.Option(None, "--digits", help="Decimals (default: 1 for x100 columns, else 1-3)."),
    caption: str | None = typer.Option(None, "--caption", help="Caption text (default: describes scale/marks)."),
    label: str = typer.Option("tab:capeval", "--label", help="LaTeX \\label."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print a paper table: mean (± std over seeds), best in bold, second underlined.

    BLEU-n, METEOR, ROUGE-L, CIDEr-D, SPICE and CLAIR are printed x100 and the table says so (LaTeX caption,
    Markdown note, CSV header suffix _x100). LaTeX needs \\usepackage{booktabs}.

    Example:
        capeval table runs/thumb --format latex --metrics bleu_4,meteor,rouge_l,cider -o table.tex
        capeval table runs/judge --format markdown --spread auto
    """
    from capeval.rundir import load_run
    from capeval.tables import FORMATS, build_table, render

    if fmt not in FORMATS:
        raise CapevalError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    run = load_run(run_dir)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    text = render(build_table(run, names, spread=spread, digits=digits), fmt, caption=caption, label=label)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CapevalError(f"{output}: can't write ({exc})") from exc
