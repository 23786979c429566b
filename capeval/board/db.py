"""The board's embedded SQLite database (stdlib ``sqlite3``): schema, opening, transactions, corruption errors.

One file, ``DIR/board.sqlite``, in WAL mode. Every change is one ``BEGIN IMMEDIATE`` transaction, so two
``capeval board add`` at once wait for each other (busy timeout) and a killed process leaves the database as it
was before its transaction (SQLite rolls the unfinished transaction back when the file is next opened).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError

DB_FILE = "board.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 120.0

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tracks (
    name TEXT PRIMARY KEY,
    refs_sha256 TEXT NOT NULL,
    signatures TEXT,            -- JSON {output metric: signature string}, fixed by the track's first submission
    signatures_json TEXT,       -- JSON {output metric: {field: value}} (protocol v2 form) of the same
    metric_info TEXT,           -- JSON manifest "metrics" entries of the board's metrics
    created TEXT NOT NULL
);
CREATE TABLE refs (
    track TEXT NOT NULL REFERENCES tracks(name),
    position INTEGER NOT NULL,
    sample_id TEXT NOT NULL,
    texts TEXT NOT NULL,        -- JSON list of reference captions
    image TEXT,
    PRIMARY KEY (track, sample_id)
);
CREATE TABLE submissions (
    id INTEGER PRIMARY KEY,
    track TEXT NOT NULL REFERENCES tracks(name),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    active INTEGER NOT NULL,    -- 1 = on the board; 0 = replaced by a later version or removed
    status TEXT NOT NULL,       -- active | superseded | removed
    captioner TEXT NOT NULL,    -- the captioner's name inside the run directory
    note TEXT,
    added TEXT NOT NULL,        -- ISO time the submission was added
    run_path TEXT NOT NULL,
    run_created TEXT,
    capeval_version TEXT,
    content_sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL,     -- the run's manifest.json (JSON)
    summary TEXT NOT NULL,      -- this captioner's part of summary.json (JSON)
    mean_length REAL,           -- mean caption length in words
    cost_usd REAL,              -- judge cost of this captioner (NULL when unknown)
    rows_expected INTEGER NOT NULL,
    UNIQUE (track, name, version)
);
-- Per-sample data is columnar, aligned with the track's sample order (refs.position): a submission covers
-- exactly its track's samples. captions.texts: JSON list (null = no caption for that sample);
-- scores."values": little-endian float64 array, NaN = failed or not scored.
CREATE TABLE captions (sub INTEGER PRIMARY KEY REFERENCES submissions(id), texts TEXT NOT NULL);
CREATE TABLE scores (sub INTEGER NOT NULL REFERENCES submissions(id), metric TEXT NOT NULL, seed INTEGER NOT NULL,
                     "values" BLOB NOT NULL, PRIMARY KEY (sub, metric, seed)) WITHOUT ROWID;
-- Protocol v2 per-sample statistics of one submission and metric (capeval.aggregation's columns): the run's
-- statistics/<metric>.parquet rows of that captioner, without the captioner column, as Parquet bytes.
CREATE TABLE statistics (sub INTEGER NOT NULL REFERENCES submissions(id), metric TEXT NOT NULL,
                         "table" BLOB NOT NULL, PRIMARY KEY (sub, metric)) WITHOUT ROWID;
CREATE TABLE corpus (sub INTEGER NOT NULL REFERENCES submissions(id), metric TEXT NOT NULL, seed INTEGER NOT NULL,
                     value REAL, PRIMARY KEY (sub, metric, seed)) WITHOUT ROWID;
CREATE TABLE details (sub INTEGER NOT NULL REFERENCES submissions(id), metric TEXT NOT NULL, seed INTEGER NOT NULL,
                      sample_id TEXT NOT NULL, detail TEXT);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,         -- add | remove | battles
    track TEXT,
    name TEXT,
    version INTEGER,
    doc TEXT NOT NULL           -- JSON: capeval version, leaders before/after per metric, ...
);
CREATE TABLE battle_sets (
    name TEXT PRIMARY KEY,
    method TEXT NOT NULL,       -- bt | elo
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    judge TEXT,
    added TEXT NOT NULL,
    skipped INTEGER NOT NULL
);
CREATE TABLE battles (
    battle_set TEXT NOT NULL REFERENCES battle_sets(name),
    position INTEGER NOT NULL,
    image TEXT,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    outcome REAL NOT NULL,      -- 1 = a wins, 0 = b wins, 0.5 = tie
    PRIMARY KEY (battle_set, position)
) WITHOUT ROWID;
CREATE TABLE cache (key TEXT PRIMARY KEY, state TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX details_sub ON details (sub);
"""


def db_path(board_dir: str | Path) -> Path:
    """The database file of a board folder."""
    return Path(board_dir) / DB_FILE


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)  # transactions by hand
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def create(board_dir: str | Path, meta: dict[str, Any]) -> sqlite3.Connection:
    """Create the database of a new board (the folder may exist but must hold no board)."""
    path = db_path(board_dir)
    if path.exists():
        raise CapevalError(f"{path}: a board already exists here")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    try:
        with transaction(conn, path):
            for statement in SCHEMA.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            rows = {"schema_version": SCHEMA_VERSION, **meta}
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in rows.items()])
    except BaseException:
        conn.close()
        raise
    return conn


def open_board(board_dir: str | Path) -> sqlite3.Connection:
    """Open an existing board; a one-line :class:`CapevalError` when it is missing, not a board or corrupt."""
    path = db_path(board_dir)
    if not path.exists():
        raise CapevalError(f"{board_dir}: not a capeval board (no {DB_FILE}; create one with `capeval board init`)")
    try:
        conn = _connect(path)
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise CapevalError(f"{path}: corrupt or not a capeval board database ({exc})") from exc
    if version is None or json.loads(version[0]) != SCHEMA_VERSION:
        conn.close()
        raise CapevalError(f"{path}: board schema version {version[0] if version else 'missing'}, this capeval "
                           f"reads version {SCHEMA_VERSION}")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, path: Path | str = DB_FILE) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error); database errors become one-line errors."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as exc:
        raise CapevalError(f"{path}: can't write the board database ({exc})") from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise CapevalError(f"{path}: board database error ({exc})") from exc
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """The board's settings (``meta`` table)."""
    return {row["key"]: json.loads(row["value"]) for row in conn.execute("SELECT key, value FROM meta")}


def check_integrity(conn: sqlite3.Connection, path: Path | str = DB_FILE) -> list[str]:
    """Problems found: SQLite's ``integrity_check`` plus every active submission having all its rows."""
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
    for row in conn.execute("SELECT id, track, name, version, rows_expected FROM submissions"):
        n = conn.execute("SELECT count(*) FROM refs WHERE track = ?", (row["track"],)).fetchone()[0]
        have = conn.execute("SELECT (SELECT count(*) FROM scores WHERE sub = ? AND length(\"values\") = ?) + "
                            "(SELECT count(*) FROM captions WHERE sub = ?) + "
                            "(SELECT count(*) FROM statistics WHERE sub = ?)",
                            (row["id"], 8 * n, row["id"], row["id"])).fetchone()[0]
        if have != row["rows_expected"]:
            problems.append(f"{path}: submission {row['name']!r} v{row['version']} has {have} of "
                            f"{row['rows_expected']} rows")
    return problems
