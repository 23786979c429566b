"""``capeval check``: the CI regression gate (exit 1 on a significant drop beyond tolerance)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from capeval.cli import app
from capeval.errors import CapevalError


def _write(path: Path, text: str, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if append else "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise CapevalError(f"{path}: can't write ({exc})") from exc


@app.command("check")
def check_command(
    run_dir: Path = typer.Argument(..., help="The run directory to check."),
    baseline: Path = typer.Option(..., "--baseline", help="The baseline run directory."),
    tolerance: list[str] = typer.Option(
        [], "--tolerance", "-t",
        help="METRIC=DROP (repeatable), or DROP for every metric: the largest allowed drop, absolute, on the "
             "metric's own scale as in summary.json, not the x100 of tables (BLEU/METEOR/ROUGE-L 0-1, "
             "CIDEr-D as is: cider=0.02 allows 1.10 -> 1.08). Default 0."),
    metrics: str | None = typer.Option(None, "--metrics", "-m",
                                       help="Comma-separated metrics to gate (default: every shared metric)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the one-sided paired test."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples for the CI of each difference."),
    n_perm: int = typer.Option(5000, "--n-perm", help="Permutations of the paired test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resampling."),
    summary_md: Path | None = typer.Option(None, "--summary-md", help="Write a Markdown summary here."),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full comparison as JSON here."),
    allow_version_change: bool = typer.Option(
        True, "--allow-version-change/--strict-version",
        help="capeval's own version is not a score-moving field and is ignored by default (the old flag is "
             "kept); --strict-version also requires the same capeval version."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Fail (exit 1) when a metric of a captioner dropped by more than its tolerance AND the drop is significant.

    The drop is tested with a one-sided paired permutation test of the run against the baseline on the same
    images (corpus metrics such as BLEU, METEOR and CIDEr-D are recomputed on each permutation), with Holm's
    correction over the captioners of each metric. A metric named by --tolerance that the run lacks, or a metric
    the run failed to score (no value where the baseline has one, e.g. every judge call failed) also fails the
    gate. Exit codes: 0 gate passed; 1 regression, missing or failed metric; 2 usage error, malformed run
    directory or incomparable runs (different references or score-moving signature fields; the message says
    which).
    The Markdown summary is also appended to $GITHUB_STEP_SUMMARY when that variable is set.

    Example:
        capeval check runs/pr --baseline runs/main --tolerance cider=0.02 --tolerance 0.005 --junit check.xml
    """
    from capeval.check import (
        IncomparableRuns,
        check_runs,
        dumps,
        junit_xml,
        markdown_summary,
        parse_tolerances,
    )

    per_metric, default = parse_tolerances(tolerance)
    metric_list = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    try:
        report = check_runs(run_dir, baseline, tolerances=per_metric, default_tolerance=default, alpha=alpha,
                            metrics=metric_list, n_boot=n_boot, n_perm=n_perm, seed=seed,
                            allow_version_change=allow_version_change)
    except IncomparableRuns as exc:
        from capeval.check import CheckReport

        empty = CheckReport(run=str(run_dir), baseline=str(baseline), alpha=alpha)
        if summary_md:
            _write(summary_md, markdown_summary(empty, error=str(exc)))
        if step_summary:
            _write(Path(step_summary), markdown_summary(empty, error=str(exc)), append=True)
        if junit:
            _write(junit, junit_xml(empty, error=str(exc)))
        raise
    text = markdown_summary(report)
    if summary_md:
        _write(summary_md, text)
    if step_summary:
        _write(Path(step_summary), text, append=True)
    if junit:
        _write(junit, junit_xml(report))
    if json_out:
        _write(json_out, dumps(report) + "\n")
    if not quiet:
        _print(report)
    if report.regressions:
        # SystemExit rather than typer.Exit: with standalone_mode=False click returns typer.Exit's code
        # instead of raising it, and capeval.cli.main() would exit 0.
        raise SystemExit(1)


def _print(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from capeval.check import _STATUS, _fmt, _fmt_p

    table = Table(title=f"capeval check · {report.run} vs {report.baseline}")
    for col in ("captioner", "metric", "baseline", "run", "Δ", "tol", "p (Holm)", "status"):
        table.add_column(col, justify="right" if col in {"baseline", "run", "Δ", "tol", "p (Holm)"} else "left")
    for r in report.rows:
        table.add_row(r.captioner, r.metric, _fmt(r.baseline), _fmt(r.new), _fmt(r.diff, signed=True),
                      f"{r.tolerance:g}", _fmt_p(r.p_holm), _STATUS.get(r.status, r.status))
    console = Console()
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    for r in report.regressions:
        console.print(f"FAIL {r.captioner} · {r.metric}: {_STATUS.get(r.status, r.status)}"
                      + (f" ({r.note})" if r.note else ""), markup=False, soft_wrap=True)
    n = len(report.regressions)
    console.print(f"{n} gate failure(s)" if n else "no significant regression", markup=False)
