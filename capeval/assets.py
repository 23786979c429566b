"""Locating the declarative asset folders: ``metrics/``, ``judges/``, ``reports/``, ``datasets/``.

In a wheel they are shipped as ``capeval/_assets/<kind>``; in a source checkout (editable install) they are
the top-level folders beside the package.
"""

from __future__ import annotations

from pathlib import Path

from capeval.errors import CapevalError

KINDS = ("metrics", "judges", "reports", "datasets")
_PACKAGE = Path(__file__).resolve().parent


def asset_dir(kind: str) -> Path:
    """The folder holding assets of one kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown asset kind {kind!r}; expected one of {KINDS}")
    for candidate in (_PACKAGE / "_assets" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise CapevalError(f"capeval's {kind}/ assets are missing (looked in {_PACKAGE / '_assets'} and {_PACKAGE.parent})")


def asset_path(kind: str, name: str) -> Path:
    """A named asset file; a clear error listing what exists when it is missing."""
    path = asset_dir(kind) / name
    if not path.exists():
        known = sorted(p.name for p in asset_dir(kind).iterdir() if not p.name.startswith("."))
        raise CapevalError(f"no {kind} asset {name!r}; available: {', '.join(known)}")
    return path
