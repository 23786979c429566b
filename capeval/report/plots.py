"""Report figures drawn with matplotlib (no pyplot, no GUI backend): bar charts and pairwise matrices as SVG."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_BAR_COLOR = "#4c72b0"


def _label(text: str, limit: int = 40) -> str:
    """A plain-text tick label: ``$`` would start matplotlib mathtext, long names are shortened."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as an ``<svg>`` element ready to inline in HTML (no XML prolog; ids unique per ``salt``)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
    # Element ids such as "patch_1" repeat in every matplotlib SVG; make them unique within the page.
    return re.sub(r'\bid="([^"]+)"', lambda m: f'id="{salt}-{m.group(1)}"', text).replace(
        'xlink:href="#', f'xlink:href="#{salt}-').replace("url(#", f"url(#{salt}-")


def bar_chart(
    metric: str,
    captioners: Sequence[str],
    means: Sequence[float],
    err_low: Sequence[float] | None,
    err_high: Sequence[float] | None,
    *,
    error_label: str,
    salt: str,
) -> str:
    """Horizontal bars of one metric per captioner with (possibly asymmetric) error bars, as inline SVG.

    ``err_low``/``err_high`` are the interval ends (absolute values, not offsets); NaN means no bar.
    """
    n = len(captioners)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.2, 0.9 + 0.32 * n), layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(n)
        m = np.asarray(means, dtype=float)
        ax.barh(y, np.nan_to_num(m), color=_BAR_COLOR, height=0.6)
        if err_low is not None and err_high is not None:
            lo = np.asarray(err_low, dtype=float)
            hi = np.asarray(err_high, dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(m)
            if ok.any():
                xerr = np.vstack([np.clip(m - lo, 0, None), np.clip(hi - m, 0, None)])[:, ok]
                ax.errorbar(m[ok], y[ok], xerr=xerr, fmt="none", ecolor="#222222", capsize=3, lw=1)
        ax.set_yticks(y, [_label(c) for c in captioners])
        ax.invert_yaxis()
        ax.set_title(_label(metric), loc="left", fontsize=10, fontweight="bold")
        ax.set_xlabel(_label(error_label, 120), fontsize=8, color="#555555")
        ax.grid(axis="x", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
        finite = m[np.isfinite(m)]
        if finite.size and finite.min() >= 0:
            ax.set_xlim(left=0)
        return to_svg(fig, salt)


def pairwise_matrix(
    metric: str,
    captioners: Sequence[str],
    win_rate: np.ndarray,
    significant: np.ndarray | None,
    *,
    salt: str,
) -> str:
    """Heatmap of ``win_rate[i, j]`` (how often row i beats column j per sample, ties count half).

    Cells where ``significant[i, j]`` is true (the paired test, Holm-corrected) get a star. Inline SVG.
    """
    n = len(captioners)
    size = max(3.4, 1.6 + 0.55 * n)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(size + 1.2, size), layout="constrained")
        ax = fig.add_subplot()
        shown = np.where(np.eye(n, dtype=bool), np.nan, win_rate)
        im = ax.imshow(shown, cmap="RdBu", vmin=0.0, vmax=1.0)
        for i in range(n):
            for j in range(n):
                if i == j or not np.isfinite(win_rate[i, j]):
                    continue
                star = "*" if significant is not None and bool(significant[i, j]) else ""
                value = win_rate[i, j]
                color = "white" if abs(value - 0.5) > 0.3 else "black"
                ax.text(j, i, f"{100 * value:.0f}{star}", ha="center", va="center", fontsize=8, color=color)
        labels = [_label(c, 24) for c in captioners]
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.spines[:].set_visible(False)
        ax.set_title(_label(metric), loc="left", fontsize=10, fontweight="bold")
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label("row beats column (% of samples)", fontsize=8)
        return to_svg(fig, salt)
