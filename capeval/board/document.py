"""The whole board as one JSON-ready document: tracks, leaderboards with CIs and tiers, paired tests, battle
rankings and history (what ``board build`` renders, ``board export --format json`` writes, and programs read)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from capeval import __version__
from capeval.board import db
from capeval.board.battles import battles_from_rows, rank_battles
from capeval.board.ranking import active_submissions, history, leaderboard, track_stats, tracks

DOC_VERSION = 1


def battle_rankings(conn: sqlite3.Connection, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Every battle set ranked with its method, cached in the database until the set changes."""
    out = []
    for s in conn.execute("SELECT * FROM battle_sets ORDER BY added").fetchall():
        key, state = f"battles:{s['name']}", json.dumps([s["sha256"], s["method"], n_boot, seed, __version__])
        cached = conn.execute("SELECT state, doc FROM cache WHERE key = ?", (key,)).fetchone()
        if cached is not None and cached["state"] == state:
            doc = json.loads(cached["doc"])
        else:
            rows = [(r[0], r[1], r[2], r[3]) for r in conn.execute(
                "SELECT model_a, model_b, outcome, image FROM battles WHERE battle_set = ? ORDER BY position",
                (s["name"],))]
            doc = rank_battles(battles_from_rows(rows), method=s["method"], n_boot=n_boot, seed=seed)
            with db.transaction(conn):
                conn.execute("INSERT OR REPLACE INTO cache (key, state, doc) VALUES (?, ?, ?)",
                             (key, state, json.dumps(doc)))
        out.append({"name": s["name"], "source": s["source"], "sha256": s["sha256"], "judge": s["judge"],
                    "added": s["added"], "skipped_on_import": s["skipped"], **doc})
    return out


def board_document(conn: sqlite3.Connection, board_dir: str | Path, params: dict[str, Any] | None = None,
                   ) -> dict[str, Any]:
    """The board document (``board.json``)."""
    settings = db.meta(conn)
    doc: dict[str, Any] = {"board_version": DOC_VERSION, "capeval_version": __version__, "title": settings["title"],
                           "created": settings["created"], "references": settings["references"], "tracks": []}
    for t in tracks(conn):
        stats = track_stats(conn, t["name"], board_dir, params)
        info = json.loads(t["metric_info"]) if t["metric_info"] else {}
        metrics = {}
        for metric, entry in stats.get("metrics", {}).items():
            family = next((f for f, m in info.items() if metric in m.get("outputs", [])), metric)
            metrics[metric] = {"family": family, "higher_is_better": entry["higher_is_better"],
                               "signature": entry["signature"], "method": entry["method"], "notes": entry["notes"],
                               "ranking": entry["ranking"], "pairs": entry["pairs"],
                               "info": info.get(family, {})}
        samples = conn.execute("SELECT count(*) FROM refs WHERE track = ?", (t["name"],)).fetchone()[0]
        doc["tracks"].append({
            "name": t["name"], "references_sha256": t["refs_sha256"], "samples": samples,
            "signatures": json.loads(t["signatures"]) if t["signatures"] else {},
            "params": stats.get("params", {}), "warnings": stats.get("warnings", []),
            "metrics": metrics, "submissions": leaderboard(conn, t["name"], stats),
            "history": history(conn, t["name"]),
            "all_versions": [{"name": s["name"], "version": s["version"], "status": s["status"], "added": s["added"],
                              "slug": s["slug"], "capeval_version": s["capeval_version"], "note": s["note"]}
                             for s in conn.execute("SELECT * FROM submissions WHERE track = ? ORDER BY id",
                                                   (t["name"],))],
            "active": len(active_submissions(conn, t["name"])),
        })
    doc["battles"] = battle_rankings(conn)
    doc["history"] = history(conn)
    return doc
