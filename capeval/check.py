"""``capeval check``: a CI regression gate comparing a run with a baseline run on the same images.

A metric of a captioner *regresses* when both hold:

* it dropped by more than its tolerance: ``baseline - new > tolerance`` for a higher-is-better metric
  (``new - baseline > tolerance`` otherwise). Tolerances are absolute, on the metric's own scale as written in
  ``summary.json`` (0-1 for BLEU, METEOR, ROUGE-L, BERTScore, CLAIR; CIDEr-D as is, e.g. 1.10), default 0;
* the drop is significant: a one-sided paired permutation test of new vs baseline on the shared images
  (corpus metrics recomputed as in :mod:`capeval.stats`), Holm-adjusted over the captioners of that metric,
  gives p < alpha (default 0.05).

Runs are comparable only when their references are the same (content of ``references.json``) and every
metric they share has the same signature; otherwise :class:`IncomparableRuns` says which differ.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval.errors import CapevalError
from capeval.hashing import sha256_json
from capeval.rundir import Run, load_run
from capeval.signature import run_differences
from capeval.stats.compute import MetricAnalysis, _ordered_ids, _run_values
from capeval.stats.corpus import StatsInput, build_source, output_info
from capeval.stats.paired import holm

GATE_FAILURES = frozenset({"regression", "missing", "failed"})
SEP = "\x1f"  # joins a captioner name and its side inside the combined input
BASE, NEW = "baseline", "new"
_VERSION_FIELD = re.compile(r"\|capeval:[^|]*$")


class IncomparableRuns(CapevalError):
    """The run and its baseline can't be compared (different references or metric signatures)."""


@dataclass
class CheckRow:
    """One (captioner, metric) comparison."""

    captioner: str
    metric: str
    baseline: float | None
    new: float | None
    diff: float | None  # new - baseline
    ci_low: float | None
    ci_high: float | None
    tolerance: float
    p_value: float | None  # one-sided, for a drop
    p_holm: float | None
    n: int
    status: str  # "ok", "regression", "within-tolerance", "drop-not-significant", "untested", "missing", "failed"
    higher_is_better: bool = True
    note: str = ""

    @property
    def drop(self) -> float | None:
        """How much worse the new run is (positive = worse), on the metric's scale."""
        if self.diff is None:
            return None
        return -self.diff if self.higher_is_better else self.diff


@dataclass
class CheckReport:
    """Everything ``capeval check`` found."""

    run: str
    baseline: str
    alpha: float
    rows: list[CheckRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def regressions(self) -> list[CheckRow]:
        """Rows that fail the gate: a drop beyond the tolerance that is significant, a gated metric missing
        from the run, or a metric the run failed to score (no value where the baseline has one)."""
        return [r for r in self.rows if r.status in GATE_FAILURES]


def parse_tolerances(items: Sequence[str]) -> tuple[dict[str, float], float]:
    """``["cider=0.02", "0.01"]`` -> ``({"cider": 0.02}, 0.01)``: per-metric tolerances and the default."""
    per_metric: dict[str, float] = {}
    default = 0.0
    for item in items:
        key, sep, value = item.partition("=")
        text = value if sep else key
        try:
            number = float(text)
        except ValueError:
            raise CapevalError(f"--tolerance must be METRIC=NUMBER or NUMBER, got {item!r}") from None
        if not math.isfinite(number) or number < 0:
            raise CapevalError(f"--tolerance must be a finite number >= 0, got {item!r}")
        if sep:
            per_metric[key.strip()] = number
        else:
            default = number
    return per_metric, default


def comparability_problems(new: Run, base: Run, metrics: Sequence[str],
                           allow_version_change: bool = True) -> list[str]:
    """Why the two runs can't be compared (empty when they can): the one rule of :mod:`capeval.signature`
    (same references, equal score-moving signature fields). capeval's own version never counts; with
    ``allow_version_change=False`` it does (``--strict-version``)."""
    problems = []
    new_refs, base_refs = sha256_json(new.references), sha256_json(base.references)
    if new_refs != base_refs:
        new_file = new.manifest.get("inputs", {}).get("references", {})
        base_file = base.manifest.get("inputs", {}).get("references", {})
        problems.append(
            f"references differ: baseline {base_file.get('path', '?')} (sha256 {base_file.get('sha256', '?')}, "
            f"{len(base.references)} images, content {base_refs[:12]}) vs run {new_file.get('path', '?')} "
            f"(sha256 {new_file.get('sha256', '?')}, {len(new.references)} images, content {new_refs[:12]})")
    for metric in metrics:
        diff = run_differences(base, new, metric)
        if not allow_version_change and new.signatures.get(metric, "").rsplit("|", 1)[-1] != \
                base.signatures.get(metric, "").rsplit("|", 1)[-1]:
            diff.append("capeval version")
        if diff:
            problems.append(f"metric signature of {metric} differs in {', '.join(diff)} (baseline vs run): "
                            f"baseline {base.signatures.get(metric, '')!r} vs run {new.signatures.get(metric, '')!r}")
    return problems


def _rename(frame: pd.DataFrame, side: str) -> pd.DataFrame:
    return frame.assign(captioner=frame["captioner"].astype(str) + SEP + side)


def combined_input(new: Run, base: Run, captioners: Sequence[str]) -> StatsInput:
    """Both runs as one :class:`StatsInput` whose captioners are ``NAME<SEP>baseline`` / ``NAME<SEP>new``."""

    def statistics(metric: str) -> pd.DataFrame:
        return pd.concat([_rename(base.statistics(metric), BASE), _rename(new.statistics(metric), NEW)],
                         ignore_index=True)

    return StatsInput(
        references={str(k): list(v) for k, v in new.references.items()},
        scores=pd.concat([_rename(base.scores, BASE), _rename(new.scores, NEW)], ignore_index=True),
        corpus=pd.concat([_rename(base.corpus, BASE), _rename(new.corpus, NEW)], ignore_index=True),
        metric_info=output_info(new.manifest.get("metrics", {})),
        signatures=dict(new.signatures),
        captioners=[f"{c}{SEP}{s}" for c in captioners for s in (BASE, NEW)],
        statistics=statistics,
    )


def _opt(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def check_runs(run_dir: str | Path, baseline_dir: str | Path, *, tolerances: Mapping[str, float] | None = None,
               default_tolerance: float = 0.0, alpha: float = 0.05, metrics: Sequence[str] | None = None,
               n_boot: int = 1000, n_perm: int = 5000, seed: int = 0,
               allow_version_change: bool = True) -> CheckReport:
    """Compare a run with its baseline; raises :class:`IncomparableRuns` or :class:`CapevalError`."""
    if not 0 < alpha < 1:
        raise CapevalError(f"--alpha must be in (0, 1), got {alpha}")
    new, base = load_run(run_dir), load_run(baseline_dir)
    tolerances = dict(tolerances or {})
    new_metrics = list(dict.fromkeys(new.corpus["metric"].astype(str)))
    base_metrics = set(base.corpus["metric"].astype(str))
    report = CheckReport(run=str(run_dir), baseline=str(baseline_dir), alpha=alpha,
                         params={"n_boot": n_boot, "n_perm": n_perm, "seed": seed,
                                 "default_tolerance": default_tolerance, "tolerances": tolerances})
    unknown_tol = [m for m in tolerances if m not in new_metrics and m not in base_metrics]
    if unknown_tol:
        raise CapevalError(f"--tolerance names metric(s) in neither run: {', '.join(unknown_tol)} "
                           f"(the run has {', '.join(new_metrics)})")
    if metrics:
        missing = [m for m in metrics if m not in new_metrics or m not in base_metrics]
        if missing:
            raise IncomparableRuns(
                "metric(s) not in both runs: " + ", ".join(
                    f"{m} ({'missing in run' if m not in new_metrics else 'missing in baseline'})" for m in missing))
        todo = list(dict.fromkeys(metrics))
    else:
        todo = [m for m in new_metrics if m in base_metrics]
        for m in new_metrics:
            if m not in base_metrics:
                report.notes.append(f"{m}: not in the baseline run; not checked")
        for m in sorted(base_metrics - set(new_metrics) - set(tolerances)):
            report.notes.append(f"{m}: in the baseline run but not in this run; not checked")
    for m in tolerances:  # a metric the gate names but the run lacks fails the gate
        if m in base_metrics and m not in new_metrics:
            base_values = _run_values(StatsInput.from_run(base), m)
            for c in base.captioners:
                b = base_values.get(c, {}).get("value")
                report.rows.append(CheckRow(c, m, _opt(b), None, None, None, None, tolerances[m], None, None, 0,
                                            "missing", True, "gated by --tolerance but missing from the run"))
    problems = comparability_problems(new, base, todo, allow_version_change)
    if problems:
        raise IncomparableRuns("runs are not comparable: " + "; ".join(problems))
    if not todo:
        raise IncomparableRuns("the runs share no metric")
    captioners = [c for c in new.captioners if c in set(base.captioners)]
    for c in base.captioners:
        if c not in captioners:
            report.notes.append(f"captioner {c!r} is in the baseline but not in this run; not checked")
    for c in new.captioners:
        if c not in set(base.captioners):
            report.notes.append(f"captioner {c!r} is new (not in the baseline); not checked")
    if not captioners:
        raise IncomparableRuns("the runs share no captioner")

    data = combined_input(new, base, captioners)
    for metric in todo:
        report.rows.extend(_check_metric(data, metric, captioners, tolerances.get(metric, default_tolerance),
                                         alpha=alpha, n_boot=n_boot, n_perm=n_perm, seed=seed))
    return report


def _check_metric(data: StatsInput, metric: str, captioners: Sequence[str], tol: float, *,
                  alpha: float, n_boot: int, n_perm: int, seed: int) -> list[CheckRow]:
    info = data.metric_info.get(metric, {})
    hib = bool(info.get("higher_is_better", True))
    values = _run_values(data, metric)
    ids = _ordered_ids(data, metric)
    caps = [c for c in captioners if f"{c}{SEP}{BASE}" in ids and f"{c}{SEP}{NEW}" in ids]
    rows: list[CheckRow] = []
    try:
        source = build_source(metric, data)
    except CapevalError as exc:
        for c in caps:
            b, n = values[f"{c}{SEP}{BASE}"]["value"], values[f"{c}{SEP}{NEW}"]["value"]
            rows.append(CheckRow(c, metric, _opt(b), _opt(n), _opt(n - b), None, None, tol, None, None,
                                 len(ids[f"{c}{SEP}{NEW}"]), "untested", hib, f"no significance test: {exc}"))
        return rows
    analysis = MetricAnalysis(source, {k: ids[k] for c in caps for k in (f"{c}{SEP}{BASE}", f"{c}{SEP}{NEW}")},
                              n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
    raw = [analysis.pair(f"{c}{SEP}{NEW}", f"{c}{SEP}{BASE}") for c in caps]
    # one-sided p of "new is worse": new - base < 0 for higher-is-better metrics
    p_drop = [r["p_less"] if hib else r["p_greater"] for r in raw]
    adjusted = holm(p_drop)
    for c, r, p, p_adj in zip(caps, raw, p_drop, adjusted, strict=True):
        b, n = values[f"{c}{SEP}{BASE}"]["value"], values[f"{c}{SEP}{NEW}"]["value"]
        diff = n - b
        drop = -diff if hib else diff
        significant = bool(np.isfinite(p_adj) and p_adj < alpha)
        if math.isfinite(b) and not math.isfinite(n):
            status, note = "failed", "the run has no value (every sample failed?) where the baseline has one"
        elif not (math.isfinite(b) and math.isfinite(n)):
            status, note = "untested", "the baseline has no value"
        elif drop > tol and significant:
            status, note = "regression", ""
        elif drop > tol:
            status, note = "drop-not-significant", ""
        elif drop > 0 and significant:
            status, note = "within-tolerance", ""
        else:
            status, note = "ok", ""
        if r["n"] != len(ids[f"{c}{SEP}{NEW}"]) or r["n"] != len(ids[f"{c}{SEP}{BASE}"]):
            note = (note + "; " if note else "") + f"compared on the {r['n']} images both runs scored"
        rows.append(CheckRow(c, metric, _opt(b), _opt(n), _opt(diff), _opt(r["ci_low"]), _opt(r["ci_high"]), tol,
                             _opt(p), _opt(p_adj), int(r["n"]), status, hib, note))
    return rows


# --- outputs ----------------------------------------------------------------------------------------------

_STATUS = {"ok": "✅ ok", "regression": "❌ regression", "missing": "❌ missing from the run",
           "failed": "❌ failed in the run", "within-tolerance": "✅ significant drop within tolerance",
           "drop-not-significant": "⚠️ drop beyond tolerance, not significant", "untested": "⚠️ untested"}


def _fmt(x: float | None, digits: int = 4, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(report: CheckReport, error: str | None = None) -> str:
    """A Markdown summary for a CI step summary (GitHub's ``$GITHUB_STEP_SUMMARY``)."""
    lines = []
    if error is not None:
        lines += ["## capeval check: ⛔ runs not comparable", "", _md_cell(error), ""]
        return "\n".join(lines) + "\n"
    n_reg = len(report.regressions)
    head = f"❌ {n_reg} regression{'s' if n_reg != 1 else ''}" if n_reg else "✅ no significant regression"
    lines += [f"## capeval check: {head}", "",
              f"Run `{_md_cell(report.run)}` vs baseline `{_md_cell(report.baseline)}`. A regression is a drop "
              f"larger than the tolerance (absolute, on the metric's scale) that is significant: one-sided paired "
              f"permutation test, Holm-adjusted over captioners, p < {report.alpha}.", "",
              "| Captioner | Metric | Baseline | Run | Δ | 95% CI of Δ | Tolerance | p (Holm) | Status |",
              "|---|---|---:|---:|---:|---|---:|---:|---|"]
    for r in sorted(report.rows, key=lambda r: (r.status != "regression", r.captioner, r.metric)):
        ci = f"[{_fmt(r.ci_low, signed=True)}, {_fmt(r.ci_high, signed=True)}]" if r.ci_low is not None else "–"
        status = _STATUS.get(r.status, r.status) + (f" ({_md_cell(r.note)})" if r.note else "")
        lines.append(f"| {_md_cell(r.captioner)} | {r.metric} | {_fmt(r.baseline)} | {_fmt(r.new)} | "
                     f"{_fmt(r.diff, signed=True)} | {ci} | {r.tolerance:g} | {_fmt_p(r.p_holm)} | {status} |")
    if report.notes:
        lines += ["", "Notes:", ""] + [f"- {_md_cell(n)}" for n in report.notes]
    return "\n".join(lines) + "\n"


def junit_xml(report: CheckReport, error: str | None = None) -> str:
    """JUnit XML: one test case per (captioner, metric); a regression is a failure, an untested pair skipped."""
    suite = ET.Element("testsuite", name="capeval check")
    if error is not None:
        case = ET.SubElement(suite, "testcase", classname="capeval.check", name="comparable runs")
        ET.SubElement(case, "error", message="runs are not comparable").text = error
        suite.set("tests", "1")
        suite.set("errors", "1")
    else:
        failures = skipped = 0
        for r in report.rows:
            case = ET.SubElement(suite, "testcase", classname=f"capeval.check.{r.captioner}", name=r.metric)
            detail = (f"baseline {_fmt(r.baseline)}, run {_fmt(r.new)}, diff {_fmt(r.diff, signed=True)}, "
                      f"tolerance {r.tolerance:g}, p (Holm) {_fmt_p(r.p_holm)}, images {r.n}"
                      + (f"; {r.note}" if r.note else ""))
            if r.status == "regression":
                failures += 1
                ET.SubElement(case, "failure", message=f"{r.metric} of {r.captioner} dropped by "
                              f"{_fmt(r.drop)} (> {r.tolerance:g}), p={_fmt_p(r.p_holm)}").text = detail
            elif r.status in GATE_FAILURES:
                failures += 1
                ET.SubElement(case, "failure", message=f"{r.metric} of {r.captioner}: {r.note}").text = detail
            elif r.status == "untested":
                skipped += 1
                ET.SubElement(case, "skipped", message=r.note or "untested")
            else:
                ET.SubElement(case, "system-out").text = detail
        suite.set("tests", str(len(report.rows)))
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped))
        suite.set("errors", "0")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def report_json(report: CheckReport) -> dict[str, Any]:
    """The report as a JSON-serialisable dict."""
    return {"run": report.run, "baseline": report.baseline, "alpha": report.alpha, "params": report.params,
            "regressions": len(report.regressions), "notes": report.notes,
            "rows": [{**r.__dict__, "drop": r.drop} for r in report.rows]}


def dumps(report: CheckReport) -> str:
    """:func:`report_json` as indented JSON."""
    return json.dumps(report_json(report), indent=2, ensure_ascii=False, allow_nan=False)
