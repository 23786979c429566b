"""Typed models of ``manifest.json`` and ``summary.json``, validated whenever a run directory is read.

A malformed file is a one-line error naming the file and the field, never a traceback deep in a consumer.
Unknown fields are kept (runs of newer capeval versions and third-party additions stay readable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from capeval.errors import CapevalError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MetricInfo(_Open):
    """One metric of a run, as the manifest describes it."""

    outputs: list[str]
    version: str = "1"
    stochastic: bool = False
    corpus_level: bool = False
    aggregation: str | None = None  # absent in runs of capeval 0.1.0
    higher_is_better: bool = True
    output_info: dict[str, dict[str, Any]] = {}


class Manifest(_Open):
    """``manifest.json``."""

    capeval_version: str
    format_version: int = 1
    captioners: list[str]
    metrics: dict[str, MetricInfo]
    signatures: dict[str, str]
    signatures_json: dict[str, dict[str, Any]] = {}
    seeds: int = 1
    inputs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    command: list[str] = []


class SummaryEntry(_Open):
    """One (captioner, metric) of ``summary.json``."""

    mean: float | None
    std: float | None = None
    n: int
    seeds: int = 1


class Summary(_Open):
    """``summary.json``."""

    captioners: dict[str, dict[str, SummaryEntry]]
    signatures: dict[str, str] = {}
    inputs: dict[str, Any] = {}


def _validate(model: type[BaseModel], doc: Any, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CapevalError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CapevalError(f"{path}: field {where}: {err['msg']}") from None
    return doc


def validate_manifest(doc: Any, path: Path) -> dict[str, Any]:
    """``doc`` if it is a valid manifest, else a one-line :class:`CapevalError` naming the file and field."""
    return _validate(Manifest, doc, path)


def validate_summary(doc: Any, path: Path) -> dict[str, Any]:
    """``doc`` if it is a valid summary, else a one-line :class:`CapevalError` naming the file and field."""
    return _validate(Summary, doc, path)
