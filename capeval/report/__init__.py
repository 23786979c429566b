"""``capeval report``: one self-contained HTML file (inline CSS, JS and SVG; no network) from run directories.

Example:
    >>> from capeval.report import build_report
    >>> build_report(["runs/thumb"], "report.html", images_dir="coco/val2014")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from capeval.assets import asset_dir
from capeval.errors import CapevalError
from capeval.report.build import DEFAULT_PAGE_SIZE, report_context
from capeval.report.merge import RunGroup, group_runs
from capeval.report.statsview import StatsView
from capeval.rundir import load_run

log = logging.getLogger("capeval")

TEMPLATE = "report-v1.html.jinja"

__all__ = ["TEMPLATE", "build_report", "group_stats", "render"]


def _environment(folder: Path) -> Environment:
    return Environment(loader=FileSystemLoader(str(folder)), autoescape=True, undefined=StrictUndefined,
                       keep_trailing_newline=True)


def group_stats(group: RunGroup) -> tuple[StatsView | None, str | None]:
    """Statistics of a group: the run's stats.json (computed and stored when missing or stale) for a single run,
    computed in memory for merged runs. Returns (view, None) or (None, why there are none)."""
    from capeval.stats import compute_stats, load_or_compute_stats

    try:
        if len(group.runs) == 1:
            try:
                doc = load_or_compute_stats(group.runs[0].path)
            except OSError as exc:  # a read-only run directory: compute without storing
                log.warning("report: can't write stats.json in %s (%s); computing in memory",
                            group.runs[0].path, exc)
                doc = load_or_compute_stats(group.runs[0].path, write=False)
        else:
            doc = compute_stats(group.merged)
    except CapevalError as exc:
        log.warning("report: no statistics for %s: %s", " + ".join(group.names), exc)
        return None, str(exc)
    return StatsView(doc), None


def render(context: dict, template: str | Path | None = None) -> str:
    """Render the report HTML from a context (autoescaping on; CSS/JS of the shipped template inlined)."""
    assets = asset_dir("reports")
    stem = TEMPLATE.split(".", 1)[0]
    context = dict(context)
    context["inline_css"] = Markup((assets / f"{stem}.css").read_text(encoding="utf-8"))
    context["inline_js"] = Markup((assets / f"{stem}.js").read_text(encoding="utf-8"))
    if template is None:
        tpl = _environment(assets).get_template(TEMPLATE)
    else:
        path = Path(template)
        if not path.is_file():
            raise CapevalError(f"report template {path}: no such file")
        tpl = _environment(path.parent).get_template(path.name)
    return tpl.render(**context)


def build_report(
    run_dirs: Sequence[str | Path],
    out_path: str | Path,
    images_dir: str | Path | None = None,
    *,
    title: str | None = None,
    template: str | Path | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    stats: bool = True,
    notes: Sequence[str] = (),
) -> Path:
    """Write the HTML report of one or more run directories to ``out_path``; returns the path.

    Runs with the same references and metric signatures are merged into one leaderboard (clashing captioner
    names get a ``run/`` prefix); other runs get their own section (see :mod:`capeval.report.merge`).
    ``images_dir`` adds image thumbnails to the sample browser. ``stats=False`` skips confidence intervals,
    significance tests and ranks. ``notes`` are paragraphs shown (escaped) under the title, e.g. what a judge's
    measured agreement with humans is.
    """
    if not run_dirs:
        raise CapevalError("capeval report needs at least one run directory")
    if page_size < 1:
        raise CapevalError(f"page size must be >= 1, got {page_size}")
    started = time.perf_counter()
    runs = [load_run(p) for p in run_dirs]
    groups = group_runs(runs)
    views: list[StatsView | None] = []
    errors: list[str | None] = []
    for group in groups:
        view, error = group_stats(group) if stats else (None, None)
        views.append(view)
        errors.append(error)
    context = report_context(groups, views, images_dir, title, Path(template).name if template else TEMPLATE,
                             page_size)
    context["notes"] = [str(n) for n in notes]
    for ctx, error in zip(context["groups"], errors, strict=True):
        ctx["stats_error"] = error
        ctx["stats_off"] = not stats
    html = render(context, template)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8", errors="replace")
    os.replace(tmp, out)
    log.info("report: wrote %s (%.1f MB) in %.1f s", out, out.stat().st_size / 1e6, time.perf_counter() - started)
    return out
