"""THumB 1.0 (../shared/data/thumb) as plain dicts, shared by the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

THUMB = next((p / "shared" / "data" / "thumb" for p in Path(__file__).resolve().parents[1:4]
              if (p / "shared").is_dir()), Path(__file__).resolve().parents[2] / "shared" / "data" / "thumb")


Refs = dict[str, list[str]]
Systems = dict[str, dict[str, str]]


def load_thumb(limit: int | None = None, folder: Path = THUMB) -> tuple[Refs, Systems]:
    """({seg_id: refs}, {system: {seg_id: caption}}) for the first ``limit`` images (all when None)."""
    refs = {}
    for line in (folder / "mscoco_references.jsonl").read_text().splitlines():
        row = json.loads(line)
        refs[row["seg_id"]] = row["refs"]
    ids = list(refs)[:limit] if limit else list(refs)
    refs = {i: refs[i] for i in ids}
    systems: dict[str, dict[str, str]] = {}
    for line in (folder / "mscoco_THumB-1.0.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["seg_id"] in refs:
            systems.setdefault(row["SYS"], {})[row["seg_id"]] = row["hyp"]
    return refs, systems
