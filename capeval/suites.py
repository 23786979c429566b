"""Metric suites: YAML files in ``metrics/`` naming metrics and their options (lm-eval-harness style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from capeval.assets import asset_dir
from capeval.errors import CapevalError


def load_suite(name_or_path: str) -> dict[str, Any]:
    """Load a suite by name (``coco`` -> ``metrics/coco.yaml``) or by path; ``include:`` merges a base suite."""
    path = Path(name_or_path)
    if not path.exists():
        path = asset_dir("metrics") / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in asset_dir("metrics").glob("*.yaml"))
        raise CapevalError(f"no metric suite {name_or_path!r}; available: {', '.join(known)}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CapevalError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics", []), list):
        raise CapevalError(f"{path}: a suite is a mapping with a 'metrics' list")
    if "include" in doc:
        base = load_suite(str(path.parent / doc["include"]) if (path.parent / doc["include"]).exists()
                          else doc["include"])
        merged_opts = {**base.get("options", {}), **(doc.get("options") or {})}
        doc = {**base, **doc, "metrics": doc.get("metrics") or base["metrics"], "options": merged_opts}
    doc.setdefault("options", {})
    doc["path"] = str(path)
    return doc


def list_suites() -> list[str]:
    """Names of the bundled suites."""
    return sorted(p.stem for p in asset_dir("metrics").glob("*.yaml"))
