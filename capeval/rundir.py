"""The run directory: what ``capeval score`` writes and ``report``/``table``/``check`` read.

Files:

* ``manifest.json``: capeval version, metric signatures, sha256 of every input, captioner names, command
  line, start/end times, environment. Never a secret.
* ``scores.parquet``: per-sample scores, long format (captioner, sample_id, metric, seed, value).
* ``corpus.parquet``: corpus score per (captioner, metric, seed).
* ``summary.json``: ``{"captioners": {NAME: {METRIC: {"mean", "std", "n", "seeds"}}}, "signatures": {...},
  "inputs": {...}}`` (plus ``failures`` and ``usage`` when a metric reports them).
* ``captions.parquet``: (captioner, sample_id, caption); ``references.json``: ``{sample_id: [refs]}``;
  ``images.json``: ``{sample_id: image path}`` when known; ``details.parquet``: per-sample judge reasons.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from capeval import __version__
from capeval.errors import CapevalError

if TYPE_CHECKING:
    from capeval.api import Results

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|authorization)", re.IGNORECASE)
PACKAGES = ("pycocoevalcap", "numpy", "pandas", "torch", "transformers", "bert-score", "openai", "spacy", "nltk")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def _package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options safe to write: anything that looks like a credential is dropped."""
    return {k: v for k, v in options.items() if not SECRET_KEY.search(k)}


def redact_command(argv: list[str]) -> list[str]:
    """A command line with the value after any credential-like flag replaced."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
            continue
        if arg.startswith("--") and SECRET_KEY.search(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide = True
            continue
        out.append(arg)
    return out


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_run(results: Results, run_dir: Path, command: list[str] | None = None) -> Path:
    """Write every file of the run directory; returns its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = results.dataset
    manifest = {
        "capeval_version": __version__,
        "created": _iso(results.finished),
        "started": _iso(results.started),
        "finished": _iso(results.finished),
        "command": redact_command(list(command if command is not None else sys.argv)),
        "captioners": data.captioners,
        "metrics": results.metric_info,
        "signatures": results.signatures,
        "seeds": results.seeds,
        "inputs": results.inputs,
        "samples": len(data.references),
        "options": public_options(results.options),
        "engine": dict(results.engine),  # where it ran (local or ray, workers): never part of a signature
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "packages": _package_versions()},
    }
    if results.usage:
        manifest["usage"] = results.usage
    results.samples.to_parquet(run_dir / "scores.parquet", index=False)
    results.corpus.to_parquet(run_dir / "corpus.parquet", index=False)
    captions = pd.DataFrame(
        [(cap, sid, text) for cap, cands in data.candidates.items() for sid, text in cands.items()],
        columns=["captioner", "sample_id", "caption"],
    )
    captions.to_parquet(run_dir / "captions.parquet", index=False)
    _write_json(run_dir / "references.json", data.references)
    if data.images:
        _write_json(run_dir / "images.json", data.images)
    if results.details is not None:
        results.details.to_parquet(run_dir / "details.parquet", index=False)
    _write_json(run_dir / "summary.json", results.summary_dict())
    _write_json(run_dir / "manifest.json", manifest)  # last: its presence marks a complete run
    return run_dir


@dataclass
class Run:
    """A run directory read back."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    scores: pd.DataFrame
    corpus: pd.DataFrame
    captions: pd.DataFrame
    references: dict[str, list[str]]
    images: dict[str, str]
    details: pd.DataFrame | None

    @property
    def captioners(self) -> list[str]:
        """Captioner names in run order."""
        return list(self.manifest["captioners"])

    @property
    def signatures(self) -> dict[str, str]:
        """Metric signatures of the run."""
        return dict(self.summary.get("signatures", {}))


def load_run(path: str | Path) -> Run:
    """Read a run directory written by :func:`write_run`; a clear error when it is incomplete."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise CapevalError(f"{path}: not a capeval run directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        refs = json.loads((path / "references.json").read_text(encoding="utf-8"))
        images_path = path / "images.json"
        images = json.loads(images_path.read_text(encoding="utf-8")) if images_path.exists() else {}
        scores = pd.read_parquet(path / "scores.parquet")
        corpus = pd.read_parquet(path / "corpus.parquet")
        captions = pd.read_parquet(path / "captions.parquet")
    except (OSError, ValueError) as exc:
        raise CapevalError(f"{path}: incomplete or corrupt run directory ({exc})") from exc
    details_path = path / "details.parquet"
    details = pd.read_parquet(details_path) if details_path.exists() else None
    return Run(path, manifest, summary, scores, corpus, captions, refs, images, details)
