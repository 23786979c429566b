"""The run directory: what ``capeval score`` writes and ``stats``/``report``/``table``/``check``/``board`` read.

Files (format version 2):

* ``manifest.json``: capeval version, format version, metrics (outputs, version, aggregation rule, each
  output's display name, scale and direction), signatures (strings and JSON), sha256 of every input,
  captioner names, command line (redacted), start/end times, environment. Never a secret.
* ``scores.parquet``: per-sample scores, long format (captioner, sample_id, metric, seed, value).
* ``corpus.parquet``: corpus value per (captioner, metric, seed), the metric's aggregation of its statistics.
* ``statistics/<metric>.parquet``: per-sample sufficient statistics (captioner, seed, sample_id, then the
  columns of the metric's aggregation rule, :mod:`capeval.aggregation`).
* ``tokens.parquet``: PTB tokens of every candidate and reference (captioner ``""`` for references).
* ``summary.json``: ``{"captioners": {NAME: {METRIC: {"mean", "std", "n", "seeds"}}}, "signatures": {...},
  "inputs": {...}}`` (plus ``failures`` and ``usage`` when a metric reports them).
* ``captions.parquet``: (captioner, sample_id, caption); ``references.json``: ``{sample_id: [refs]}``;
  ``images.json``: ``{sample_id: image path}`` when known; ``details.parquet``: per-sample judge reasons.

A run directory is written whole: into a temporary sibling, then renamed into place, so a failed or killed
write never leaves a mix of two runs. ``--out`` must be new, empty or a previous capeval run (else
``overwrite=True``), and never holds an input that the run would replace.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from capeval.errors import CapevalError
from capeval.runschema import validate_manifest, validate_summary
from capeval.secrets import public_options, redact_command
from capeval.version import __version__

if TYPE_CHECKING:
    from capeval.api import Results

log = logging.getLogger("capeval")

FORMAT_VERSION = 2
PACKAGES = ("pycocoevalcap", "numpy", "pandas", "torch", "transformers", "bert-score", "openai", "spacy", "nltk")
STATISTICS_DIR = "statistics"
# Everything capeval writes into a run directory (and may replace there); other files are the user's.
RUN_ARTIFACTS = frozenset({
    "manifest.json", "summary.json", "scores.parquet", "corpus.parquet", "captions.parquet", "references.json",
    "images.json", "details.parquet", STATISTICS_DIR, "tokens.parquet", "stats.json", "report.html",
})


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


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run capeval wrote (a manifest with a capeval version)."""
    try:
        doc = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and "capeval_version" in doc


def _input_paths(results: Results) -> list[Path]:
    paths = []
    infos = [results.inputs.get("references", {}), *results.inputs.get("candidates", {}).values()]
    for info in infos:
        p = info.get("path") if isinstance(info, dict) else None
        if p and not str(p).startswith("<"):
            paths.append(Path(p))
    return paths


def check_out_dir(run_dir: str | Path, *, inputs: list[Path] = (), overwrite: bool = False) -> None:  # type: ignore[assignment]
    """Refuse an output directory that would lose data: one holding files that are not a previous capeval
    run (unless ``overwrite``), or one where the run would replace or remove an input file.

    Called before scoring, so a refused ``--out`` costs nothing.
    """
    out = Path(run_dir).resolve()
    for p in inputs:
        rp = Path(p).resolve()
        try:
            rel = rp.relative_to(out)
        except ValueError:
            continue
        if rel.parts and rel.parts[0] in RUN_ARTIFACTS:
            raise CapevalError(f"--out {run_dir}: the run would overwrite its input {p}; choose another --out")
        if not overwrite or is_run_dir(out):
            raise CapevalError(f"--out {run_dir}: it holds the input {p}; choose a new directory for the run")
    if not out.exists():
        return
    if not out.is_dir():
        raise CapevalError(f"--out {run_dir}: exists and is not a directory")
    entries = list(out.iterdir())
    if entries and not is_run_dir(out) and not overwrite:
        names = ", ".join(sorted(e.name for e in entries)[:3])
        raise CapevalError(f"--out {run_dir}: not empty and not a capeval run ({names}...); choose a new "
                           "directory or pass --overwrite")


def _manifest(results: Results, command: list[str] | None) -> dict[str, Any]:
    data = results.dataset
    manifest: dict[str, Any] = {
        "capeval_version": __version__,
        "format_version": FORMAT_VERSION,
        "created": _iso(results.finished),
        "started": _iso(results.started),
        "finished": _iso(results.finished),
        "command": redact_command(list(command if command is not None else sys.argv)),
        "captioners": data.captioners,
        "metrics": results.metric_info,
        "signatures": results.signatures,
        "signatures_json": results.signatures_json,
        "seeds": results.seeds,
        "inputs": results.inputs,
        "samples": len(data.references),
        "options": public_options(results.options),
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "packages": _package_versions()},
    }
    if results.suite:
        manifest["suite"] = results.suite
    if results.usage:
        manifest["usage"] = results.usage
    if results.engine:
        manifest["engine"] = results.engine
    return manifest


def _write_files(results: Results, tmp: Path, command: list[str] | None) -> None:
    data = results.dataset
    results.samples.to_parquet(tmp / "scores.parquet", index=False)
    results.corpus.to_parquet(tmp / "corpus.parquet", index=False)
    if results.statistics:
        (tmp / STATISTICS_DIR).mkdir()
        for name, table in results.statistics.items():
            table.to_parquet(tmp / STATISTICS_DIR / f"{name}.parquet", index=False)
    if results.tokens is not None:
        results.tokens.to_parquet(tmp / "tokens.parquet", index=False)
    captions = pd.DataFrame(
        [(cap, sid, text) for cap, cands in data.candidates.items() for sid, text in cands.items()],
        columns=["captioner", "sample_id", "caption"],
    )
    captions.to_parquet(tmp / "captions.parquet", index=False)
    _write_json(tmp / "references.json", data.references)
    if data.images:
        _write_json(tmp / "images.json", data.images)
    if results.details is not None:
        results.details.to_parquet(tmp / "details.parquet", index=False)
    _write_json(tmp / "summary.json", results.summary_dict())
    _write_json(tmp / "manifest.json", _manifest(results, command))


def write_run(results: Results, run_dir: Path, command: list[str] | None = None, *, overwrite: bool = False) -> Path:
    """Write the run directory whole (temporary sibling, then rename); returns its path."""
    run_dir = Path(run_dir)
    check_out_dir(run_dir, inputs=_input_paths(results), overwrite=overwrite)
    out = run_dir.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.capeval-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_files(results, tmp, command)
        if not out.exists():
            os.rename(tmp, out)
        elif not any(e.name not in RUN_ARTIFACTS for e in out.iterdir()) and out != Path.cwd().resolve():
            old = out.parent / f".{out.name}.capeval-old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:  # the user's own files stay: replace capeval's files one by one, the manifest last
            (out / "manifest.json").unlink(missing_ok=True)
            for name in RUN_ARTIFACTS - {"manifest.json"}:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            for entry in sorted(tmp.iterdir(), key=lambda e: e.name == "manifest.json"):
                os.replace(entry, out / entry.name)
            tmp.rmdir()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run_dir


@dataclass
class Run:
    """A run directory read back (or several merged in memory)."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    scores: pd.DataFrame
    corpus: pd.DataFrame
    captions: pd.DataFrame
    references: dict[str, list[str]]
    images: dict[str, str]
    details: pd.DataFrame | None
    stats_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # metric name -> statistics
    tokens: pd.DataFrame | None = None

    @property
    def captioners(self) -> list[str]:
        """Captioner names in run order."""
        return list(self.manifest["captioners"])

    @property
    def signatures(self) -> dict[str, str]:
        """Metric signatures of the run."""
        return dict(self.summary.get("signatures", {}))

    @property
    def format_version(self) -> int:
        """1 for runs of capeval 0.1.0 (no statistics), 2 since."""
        return int(self.manifest.get("format_version", 1))

    def statistics(self, metric: str) -> pd.DataFrame:
        """The statistics table of metric ``metric`` (a metric name such as ``bleu``, not an output)."""
        if metric not in self.stats_tables and self.format_version < FORMAT_VERSION:
            from capeval.rundir_legacy import recompute_statistics

            self.stats_tables[metric] = recompute_statistics(self, metric)
        if metric not in self.stats_tables:
            raise CapevalError(f"{self.path}: no statistics for metric {metric!r} in this run")
        return self.stats_tables[metric]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapevalError(f"{path}: missing (incomplete run directory)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CapevalError(f"{path}: unreadable JSON ({exc})") from None


def load_run(path: str | Path) -> Run:
    """Read a run directory written by :func:`write_run`; a clear one-line error when it is incomplete or
    malformed. Runs of capeval 0.1.0 (no statistics) are upgraded in memory, with a notice
    (:mod:`capeval.rundir_legacy`)."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise CapevalError(f"{path}: not a capeval run directory (no manifest.json)")
    manifest = validate_manifest(_read_json(manifest_path), manifest_path)
    summary = validate_summary(_read_json(path / "summary.json"), path / "summary.json")
    refs = _read_json(path / "references.json")
    if not isinstance(refs, dict):
        raise CapevalError(f"{path / 'references.json'}: expected an object {{sample_id: [references]}}")
    images_path = path / "images.json"
    images = _read_json(images_path) if images_path.exists() else {}
    try:
        scores = pd.read_parquet(path / "scores.parquet")
        corpus = pd.read_parquet(path / "corpus.parquet")
        captions = pd.read_parquet(path / "captions.parquet")
        details_path = path / "details.parquet"
        details = pd.read_parquet(details_path) if details_path.exists() else None
        stats_dir = path / STATISTICS_DIR
        stats = ({p.stem: pd.read_parquet(p) for p in sorted(stats_dir.glob("*.parquet"))}
                 if stats_dir.is_dir() else {})
        tokens_path = path / "tokens.parquet"
        tokens = pd.read_parquet(tokens_path) if tokens_path.exists() else None
    except (OSError, ValueError) as exc:
        raise CapevalError(f"{path}: incomplete or corrupt run directory ({exc})") from None
    run = Run(path, manifest, summary, scores, corpus, captions, refs, images, details, stats, tokens)
    if run.format_version < FORMAT_VERSION:
        from capeval.rundir_legacy import upgrade

        upgrade(run)
    return run
