"""The report's "Other tools' scores" table: lmms-eval's / VLMEvalKit's own numbers beside capeval's (summary.json)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capeval.report.merge import RunGroup


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def external_rows(group: RunGroup, names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (run, captioner, metric) a tool scored itself: both numbers, the difference and why."""
    rows = []
    for name, run in zip(names, group.runs, strict=True):
        for captioner, doc in (run.summary.get("external") or {}).items():
            for metric, m in doc.get("metrics", {}).items():
                rows.append({
                    "run": name, "captioner": captioner, "tool": doc.get("tool"), "metric": metric,
                    "tool_name": m.get("tool_name") or "–", "tool_value": _num(m.get("tool")),
                    "capeval": _num(m.get("capeval_on_tool_scale")), "difference": _num(m.get("difference")),
                    "tool_way": _num(m.get("tool_way")),
                    "explained": {True: "yes", False: "no", None: "–"}[m.get("explained")],
                    "reason": m.get("reason", ""), "scale": doc.get("scale", 1),
                })
    return rows
