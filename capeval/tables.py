"""Paper tables of a run (``capeval table``): LaTeX (booktabs), Markdown or CSV, best in bold, second underlined.

Decisions (also in ``capeval table --help``):

* Values are ``summary.json``'s ``mean`` (the corpus score; for multi-seed metrics the mean over seeds).
  Each metric declares its display name and scale (run manifest ``output_info``): BLEU-n, METEOR, ROUGE-L,
  CIDEr-D, SPICE and CLAIR are multiplied by 100, as papers print them; the caption
  (LaTeX), the note under the table (Markdown) or the column header (CSV) says which columns are x100.
* ``±`` (``--spread auto``, the default) is the standard deviation over seeds for metrics run with several seeds
  (the "57.7±3.0" of judge papers) and nothing for single-seed metrics: a deterministic metric has no seed
  spread, and a sampling interval belongs in ``--spread ci`` (the half-width of the 95% bootstrap CI from
  ``stats.json``, computed if needed) so the table says which one it shows. ``--spread none`` prints means only.
* Best and second best follow each metric's direction (``higher_is_better``) and are decided on the printed
  (rounded) values, so equal printed numbers get the same mark.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from capeval.errors import CapevalError

FORMATS = ("latex", "markdown", "csv")
SPREADS = ("auto", "ci", "none")


@dataclass
class Column:
    """One metric column."""

    metric: str
    label: str
    scale: float
    digits: int
    higher_is_better: bool
    spread: str  # "std", "ci" or ""


@dataclass
class Cell:
    """One printed value: mean and optional spread, already scaled; ``mark`` is "best", "second" or ""."""

    mean: float | None
    spread: float | None = None
    mark: str = ""


@dataclass
class Table:
    """A table ready to render."""

    run: str
    captioners: list[str]
    columns: list[Column]
    cells: dict[tuple[str, str], Cell]
    n_images: int | None = None
    notes: list[str] = field(default_factory=list)


def expand_metrics(requested: Sequence[str], run: Any) -> list[str]:
    """Output metric keys for ``requested`` names; a metric name with several outputs (``bleu``) expands."""
    available = list(dict.fromkeys(run.corpus["metric"].astype(str)))
    families = {name: info.get("outputs", [name]) for name, info in run.manifest.get("metrics", {}).items()}
    out: list[str] = []
    for name in requested:
        if name in available:
            out.append(name)
        elif name in families and any(k in available for k in families[name]):
            out.extend(k for k in families[name] if k in available)
        else:
            raise CapevalError(f"{run.path}: metric {name!r} is not in this run (it has {', '.join(available)})")
    return list(dict.fromkeys(out))


def _digits(metric: str, scale: float, values: list[float]) -> int:
    if scale != 1.0:
        return 1
    biggest = max((abs(v) for v in values), default=0.0)
    return 1 if biggest >= 10 else 2 if biggest >= 1 else 3


def build_table(run: Any, metrics: Sequence[str] | None = None, spread: str = "auto", digits: int | None = None,
                stats: dict[str, Any] | None = None) -> Table:
    """Collect the values of a table from a run (and ``stats.json`` for ``spread="ci"``)."""
    if spread not in SPREADS:
        raise CapevalError(f"--spread must be one of {', '.join(SPREADS)}, got {spread!r}")
    keys = expand_metrics(metrics, run) if metrics else list(dict.fromkeys(run.corpus["metric"].astype(str)))
    summary = run.summary.get("captioners", {})
    info: dict[str, dict[str, Any]] = {}
    for name, meta in run.manifest.get("metrics", {}).items():
        for key in meta.get("outputs", [name]):
            info[key] = {**meta, **meta.get("output_info", {}).get(key, {})}
    if spread == "ci" and stats is None:
        from capeval.stats import load_or_compute_stats

        stats = load_or_compute_stats(run.path)
    captioners = list(run.captioners)
    columns, cells = [], {}
    for key in keys:
        scale = float(info.get(key, {}).get("scale", 1.0))
        hib = bool(info.get(key, {}).get("higher_is_better", True))
        entries = {c: summary.get(c, {}).get(key) for c in captioners}
        seeds = max((e.get("seeds", 1) for e in entries.values() if e), default=1)
        kind = "ci" if spread == "ci" else "std" if spread == "auto" and seeds > 1 else ""
        values = [e["mean"] * scale for e in entries.values() if e and e.get("mean") is not None]
        col = Column(key, str(info.get(key, {}).get("display", key)), scale,
                     digits if digits is not None else _digits(key, scale, values),
                     hib, kind)
        columns.append(col)
        for c in captioners:
            e = entries[c]
            mean = e["mean"] * scale if e and e.get("mean") is not None else None
            sp = None
            if kind == "std" and e and e.get("std") is not None:
                sp = e["std"] * scale
            elif kind == "ci" and stats is not None:
                st = stats.get("metrics", {}).get(key, {}).get("captioners", {}).get(c, {})
                if st.get("ci_low") is not None and st.get("ci_high") is not None:
                    sp = (st["ci_high"] - st["ci_low"]) / 2 * scale
            cells[(c, key)] = Cell(mean, sp)
        _mark(col, [cells[(c, key)] for c in captioners])
    n_images = run.manifest.get("samples")
    return Table(str(run.path), captioners, columns, cells, n_images if isinstance(n_images, int) else None)


def _mark(col: Column, cells: list[Cell]) -> None:
    printed = sorted({round(c.mean, col.digits) for c in cells if c.mean is not None and math.isfinite(c.mean)},
                     reverse=col.higher_is_better)
    best = printed[0] if printed else None
    second = printed[1] if len(printed) > 1 else None
    for c in cells:
        if c.mean is None or not math.isfinite(c.mean):
            continue
        shown = round(c.mean, col.digits)
        c.mark = "best" if shown == best else "second" if shown == second else ""


def _scale_note(table: Table) -> str:
    scaled = [c.label for c in table.columns if c.scale == 100.0]
    if not scaled:
        return ""
    names = scaled[0] if len(scaled) == 1 else ", ".join(scaled[:-1]) + " and " + scaled[-1]
    return f"{names} {'is' if len(scaled) == 1 else 'are'} ×100."


def _spread_note(table: Table) -> str:
    kinds = {c.spread for c in table.columns if c.spread}
    notes = []
    if "std" in kinds:
        notes.append("± is the standard deviation over seeds")
    if "ci" in kinds:
        notes.append("± is the half-width of the 95% bootstrap confidence interval over images")
    return "; ".join(notes) + ("." if notes else "")


def caption_text(table: Table) -> str:
    """The plain-text caption: image count, scale, marks and spread."""
    parts = [f"Caption metrics{f' on {table.n_images} images' if table.n_images else ''}."]
    for note in (_scale_note(table), "Best in bold, second underlined.", _spread_note(table)):
        if note:
            parts.append(note)
    return " ".join(parts)


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


# --- LaTeX ------------------------------------------------------------------------------------------------

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _cell_text(cell: Cell, col: Column, *, missing: str, best: str, second: str, pm: str) -> str:
    """One formatted cell: the mean, marked best/second with the format's markup, then ``pm`` and the spread."""
    if cell.mean is None or not math.isfinite(cell.mean):
        return missing
    text = _fmt(cell.mean, col.digits)
    text = {"best": best, "second": second}.get(cell.mark, "{}").format(text)
    if cell.spread is not None:
        text += f"{pm}{_fmt(cell.spread, col.digits)}"
    return text


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def render_latex(table: Table, caption: str | None = None, label: str = "tab:capeval") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    cap = caption if caption is not None else caption_text(table)
    cap = latex_escape(cap).replace("×100", r"$\times$100").replace("±", r"$\pm$")
    lines = [f"% capeval table of {latex_escape(table.run)}; needs \\usepackage{{booktabs}}",
             r"\begin{table}[t]", r"  \centering", f"  \\caption{{{cap}}}", f"  \\label{{{label}}}",
             f"  \\begin{{tabular}}{{l{'r' * len(table.columns)}}}", r"    \toprule",
             "    " + " & ".join(["Captioner"] + [latex_escape(c.label) for c in table.columns]) + r" \\",
             r"    \midrule"]
    for cap_name in table.captioners:
        row = [latex_escape(cap_name)]
        row += [_cell_text(table.cells[(cap_name, col.metric)], col, missing="--", best="\\textbf{{{}}}",
                           second="\\underline{{{}}}", pm="\\,$\\pm$\\,") for col in table.columns]
        lines.append("    " + " & ".join(row) + r" \\")
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# --- Markdown ---------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_").replace(
        "<", "&lt;")


def render_markdown(table: Table, caption: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; best in bold, second underlined (``<u>``), caption below."""
    header = ["Captioner"] + [c.label + (" (×100)" if c.scale == 100.0 else "") for c in table.columns]
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |",
             "|" + "---|" + "---:|" * len(table.columns)]
    for cap_name in table.captioners:
        row = [_md_escape(cap_name)]
        row += [_cell_text(table.cells[(cap_name, col.metric)], col, missing="–", best="**{}**",
                           second="<u>{}</u>", pm=" ± ") for col in table.columns]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"_{_md_escape(caption if caption is not None else caption_text(table))}_"]
    return "\n".join(lines) + "\n"


# --- CSV --------------------------------------------------------------------------------------------------


def render_csv(table: Table) -> str:
    """CSV: one row per captioner; a value column per metric (header says ``x100`` when scaled), plus a
    ``_std`` or ``_ci95_halfwidth`` column when a spread is shown. Full precision, no marks."""
    header = ["captioner"]
    for col in table.columns:
        header.append(col.metric + ("_x100" if col.scale == 100.0 else ""))
        if col.spread:
            header.append(col.metric + ("_x100" if col.scale == 100.0 else "")
                          + ("_std" if col.spread == "std" else "_ci95_halfwidth"))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for cap_name in table.captioners:
        row: list[str] = [cap_name]
        for col in table.columns:
            cell = table.cells[(cap_name, col.metric)]
            row.append("" if cell.mean is None else repr(round(cell.mean, 12)))
            if col.spread:
                row.append("" if cell.spread is None else repr(round(cell.spread, 12)))
        writer.writerow(row)
    return buf.getvalue()


def render(table: Table, fmt: str, caption: str | None = None, label: str = "tab:capeval") -> str:
    """Render in ``latex``, ``markdown`` or ``csv``."""
    if fmt == "latex":
        return render_latex(table, caption, label)
    if fmt == "markdown":
        return render_markdown(table, caption)
    if fmt == "csv":
        return render_csv(table)
    raise CapevalError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
