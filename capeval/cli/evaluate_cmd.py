"""``capeval export-evaluate``: write capeval's metrics as local Hugging Face ``evaluate`` modules."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app


@app.command("export-evaluate")
def export_evaluate_command(
    folder: Path = typer.Argument(..., help="Folder to write DIR/<metric>/<metric>.py into."),
    metrics: str | None = typer.Option(None, "--metrics", "-m", help="Comma-separated metrics (default: all)."),
) -> None:
    """Write one Hugging Face evaluate module per capeval metric (thin: each calls capeval).

    Load them offline with a ./ (or absolute) path: without it, evaluate looks "DIR/cider" up on the hub.

    Example:
        capeval export-evaluate capeval_modules
        HF_EVALUATE_OFFLINE=1 python -c "import evaluate; m = evaluate.load('./capeval_modules/cider', \\
            keep_in_memory=True); print(m.compute(predictions=['a cat'], references=[['a cat', 'a dog']]))"
    """
    from capeval.hf_evaluate import export_modules

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    for path in export_modules(folder, names):
        typer.echo(str(path))
