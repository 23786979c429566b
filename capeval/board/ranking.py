"""A track of the board read back as a :class:`capeval.rundir.Run` (every active submission one captioner), so
its confidence intervals, paired tests, Holm correction and tiers are computed by the code of ``capeval stats``
(:func:`capeval.stats.compute_stats`), and cached in the database until the track changes."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval import __version__
from capeval.board.submit import track_references
from capeval.hashing import sha256_json
from capeval.rundir import FORMAT_VERSION, Run
from capeval.stats import STATS_VERSION, compute_stats

DEFAULT_PARAMS = {"n_boot": 1000, "n_perm": 5000, "seed": 0, "alpha": 0.05}


def active_submissions(conn: sqlite3.Connection, track: str) -> list[sqlite3.Row]:
    """Active submissions of a track in the order they were added."""
    return conn.execute("SELECT * FROM submissions WHERE track = ? AND active = 1 ORDER BY id", (track,)).fetchall()


def tracks(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every track, the main one first."""
    return conn.execute("SELECT * FROM tracks ORDER BY name != 'main', created").fetchall()


def track_run(conn: sqlite3.Connection, track: str, board_dir: str | Path = ".") -> Run:
    """The track as one in-memory run: captioner = submission name (unique among a track's active ones)."""
    row = conn.execute("SELECT * FROM tracks WHERE name = ?", (track,)).fetchone()
    subs = active_submissions(conn, track)
    names = {s["id"]: s["name"] for s in subs}
    refs = track_references(conn, track)
    order = np.asarray(list(refs), dtype=object)
    caption_frames, score_frames = [], []
    for s in subs:
        texts = json.loads(conn.execute("SELECT texts FROM captions WHERE sub = ?", (s["id"],)).fetchone()[0])
        have = np.asarray([t is not None for t in texts], dtype=bool)
        caption_frames.append(pd.DataFrame({"captioner": s["name"], "sample_id": order[have],
                                            "caption": [t for t in texts if t is not None]}))
        for metric, seed, blob in conn.execute('SELECT metric, seed, "values" FROM scores WHERE sub = ?',
                                               (s["id"],)):
            values = np.frombuffer(blob, dtype="<f8")
            score_frames.append(pd.DataFrame({"captioner": s["name"], "sample_id": order[have], "metric": metric,
                                              "seed": seed, "value": values[have]}))
    stats_parts: dict[str, list[pd.DataFrame]] = {}
    for s in subs:
        for metric, blob in conn.execute('SELECT metric, "table" FROM statistics WHERE sub = ?', (s["id"],)):
            table = pd.read_parquet(io.BytesIO(blob))
            table.insert(0, "captioner", s["name"])
            stats_parts.setdefault(metric, []).append(table)
    stats_tables = {m: pd.concat(parts, ignore_index=True) for m, parts in stats_parts.items()}
    ids = ",".join(str(i) for i in names) or "NULL"
    corpus = pd.read_sql_query(f"SELECT sub, metric, seed, value FROM corpus WHERE sub IN ({ids}) ORDER BY sub", conn)
    corpus.insert(0, "captioner", corpus.pop("sub").map(names))
    corpus["value"] = corpus["value"].astype(float)
    scores = (pd.concat(score_frames, ignore_index=True) if score_frames else
              pd.DataFrame(columns=["captioner", "sample_id", "metric", "seed", "value"]))
    captions = (pd.concat(caption_frames, ignore_index=True) if caption_frames else
                pd.DataFrame(columns=["captioner", "sample_id", "caption"]))
    signatures = json.loads(row["signatures"]) if row["signatures"] else {}
    metric_info = json.loads(row["metric_info"]) if row["metric_info"] else {}
    images = {r[0]: r[1] for r in conn.execute("SELECT sample_id, image FROM refs WHERE track = ? AND image IS NOT "
                                               "NULL", (track,))}
    summary = {"captioners": {s["name"]: json.loads(s["summary"]) for s in subs}, "signatures": signatures}
    manifest = {"capeval_version": __version__, "format_version": FORMAT_VERSION,
                "signatures_json": json.loads(row["signatures_json"]) if row["signatures_json"] else {},
                "captioners": [s["name"] for s in subs], "metrics": metric_info,
                "signatures": signatures, "seeds": int(corpus["seed"].nunique()) if len(corpus) else 1,
                "board_track": track}
    return Run(path=Path(board_dir), manifest=manifest, summary=summary, scores=scores, corpus=corpus,
               captions=captions, references=refs, images=images, details=None,
               stats_tables=stats_tables)


def track_state(conn: sqlite3.Connection, track: str, params: dict[str, Any]) -> str:
    """A key that changes whenever the track's active submissions or the parameters change."""
    subs = [(s["id"], s["content_sha256"]) for s in active_submissions(conn, track)]
    return sha256_json({"subs": subs, "params": params, "stats_version": STATS_VERSION, "capeval": __version__})


def track_stats(conn: sqlite3.Connection, track: str, board_dir: str | Path = ".",
                params: dict[str, Any] | None = None, write: bool = True) -> dict[str, Any]:
    """The ``stats.json`` document of a track (see :mod:`capeval.stats`), reused from the cache when the track
    has not changed since it was computed."""
    params = {**DEFAULT_PARAMS, **(params or {})}
    state = track_state(conn, track, params)
    key = f"stats:{track}"
    cached = conn.execute("SELECT state, doc FROM cache WHERE key = ?", (key,)).fetchone()
    if cached is not None and cached["state"] == state:
        return json.loads(cached["doc"])
    run = track_run(conn, track, board_dir)
    if not run.captioners:
        return {"metrics": {}, "captioners": [], "params": params, "warnings": []}
    outputs = list(run.signatures)
    doc = compute_stats(run, metrics=outputs, **params)
    if write:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if track_state(conn, track, params) == state:  # nobody changed the track meanwhile
                conn.execute("INSERT OR REPLACE INTO cache (key, state, doc) VALUES (?, ?, ?)",
                             (key, state, json.dumps(doc, allow_nan=False)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return doc


def leaderboard(conn: sqlite3.Connection, track: str, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per active submission: its values, CIs, tiers (= significance ranks) per metric and metadata."""
    rows = []
    for s in active_submissions(conn, track):
        name = s["name"]
        metrics = {}
        for metric, entry in stats.get("metrics", {}).items():
            c = entry["captioners"].get(name, {})
            metrics[metric] = {k: c.get(k) for k in ("value", "ci_low", "ci_high", "se", "n", "rank", "rank_range",
                                                    "seeds", "seed_std")}
        rows.append({"name": name, "version": s["version"], "slug": s["slug"], "note": s["note"],
                     "added": s["added"], "captioner": s["captioner"], "capeval_version": s["capeval_version"],
                     "run_path": s["run_path"], "mean_length": s["mean_length"], "cost_usd": s["cost_usd"],
                     "metrics": metrics})
    return rows


def history(conn: sqlite3.Connection, track: str | None = None) -> list[dict[str, Any]]:
    """Board events (add, remove, battles), oldest first."""
    sql = "SELECT * FROM events" + (" WHERE track = ?" if track else "") + " ORDER BY id"
    return [{"time": r["time"], "kind": r["kind"], "track": r["track"], "name": r["name"], "version": r["version"],
             **json.loads(r["doc"])} for r in conn.execute(sql, (track,) if track else ())]
