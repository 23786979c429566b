"""Shared fixtures: the ../shared data folder beside the repository."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (CI); CAPEVAL_SHARED_DATA overrides it (e.g. for a git worktree)
SHARED_DATA = Path(os.environ.get("CAPEVAL_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; tests that need it fail loudly when it is missing (CI always has it)."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: ../shared must sit beside the repository"
    return SHARED_DATA


def load_thumb(shared: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """THumB 1.0: ({seg_id: [4 refs]}, {system: {seg_id: caption}})."""
    refs = {}
    for line in (shared / "thumb" / "mscoco_references.jsonl").read_text().splitlines():
        row = json.loads(line)
        refs[row["seg_id"]] = row["refs"]
    systems: dict[str, dict[str, str]] = {}
    for line in (shared / "thumb" / "mscoco_THumB-1.0.jsonl").read_text().splitlines():
        row = json.loads(line)
        systems.setdefault(row["SYS"], {})[row["seg_id"]] = row["hyp"]
    return refs, systems


@pytest.fixture(scope="session")
def thumb(shared_data: Path):
    """THumB references and the 5 systems' captions."""
    return load_thumb(shared_data)


@pytest.fixture(autouse=True)
def _capeval_logs_reach_caplog():
    """The CLI's main() (called in-process by some tests) stops the capeval logger propagating; undo that."""
    import logging

    logger = logging.getLogger("capeval")
    before = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = before
