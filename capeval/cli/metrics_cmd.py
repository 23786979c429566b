"""``capeval metrics``: list every registered metric, what it needs and whether it runs here."""

from __future__ import annotations

import json

import typer

from capeval.cli import app
from capeval.registry import get_metric_class, metric_names


def metric_rows() -> list[dict]:
    """One row per registered metric: name, outputs, needs, availability."""
    rows = []
    for name in metric_names():
        try:
            cls = get_metric_class(name)
            avail = cls.availability()
            rows.append({
                "name": name, "outputs": list(cls.outputs), "needs": sorted(cls.needs),
                "stochastic": cls.stochastic, "available": avail.ok, "reason": avail.reason,
                "description": cls.description,
            })
        except Exception as exc:  # a third-party entry point that fails to import
            rows.append({"name": name, "outputs": [], "needs": [], "stochastic": False, "available": False,
                         "reason": f"failed to load: {exc}", "description": ""})
    return rows


@app.command("metrics")
def metrics_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every metric, what it needs, and whether it can run on this machine (and if not, why).

    Example:
        capeval metrics
        capeval metrics --json
    """
    rows = metric_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="capeval metrics")
    for col in ("metric", "outputs", "needs", "runs here", "why not / description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], ", ".join(r["outputs"]), ", ".join(r["needs"]),
                      "yes" if r["available"] else "no", r["reason"] or r["description"])
    Console().print(table)
