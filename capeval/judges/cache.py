"""The judge response cache: one SQLite file in WAL mode, one row per completed call, committed at once.

Every successful reply is committed before it is handed back, so a run killed with SIGKILL at any moment and
started again repeats no completed call. Failed calls are not cached (a rerun retries them). A corrupt or
locked cache raises :class:`CacheError` naming the file; capeval never silently starts over and re-spends.
The file never holds a secret: only the key hash, the model name, the reply text, token counts and (for
likelihood scoring) the reply's token log-probabilities.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from capeval.errors import CapevalError

SCHEMA_VERSION = "1"
_CHUNK = 500


class CacheError(CapevalError):
    """The judge cache can't be used (corrupt, locked, unwritable); the message names the file."""


@dataclass(frozen=True)
class CachedReply:
    """A cached judgment."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    logprobs: list | None = None


def _dump_logprobs(logprobs: list | None) -> str | None:
    return None if logprobs is None else json.dumps(logprobs, separators=(",", ":"), ensure_ascii=False)


def _load_logprobs(text: str | None) -> list | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # an unreadable stored value reads as "no logprobs": a counted failure, never a score
    return value if isinstance(value, list) else None


class JudgeCache:
    """SQLite (WAL) store of judge replies keyed by :func:`capeval.judges.protocol.cache_key`."""

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"judge cache {self.path}: can't create its folder ({exc})") from exc
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise CacheError(f"judge cache {self.path}: can't switch to WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                "finish_reason TEXT, created REAL NOT NULL) WITHOUT ROWID")
            if "logprobs" not in [r[1] for r in conn.execute("PRAGMA table_info(judgments)")]:
                conn.execute("ALTER TABLE judgments ADD COLUMN logprobs TEXT")  # capeval < 0.2 files
            conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            row = conn.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            if row[0] != SCHEMA_VERSION:
                raise CacheError(f"judge cache {self.path}: schema version {row[0]}, this capeval expects "
                                 f"{SCHEMA_VERSION}; point judge_cache at a new file")
            cols = [r[1] for r in conn.execute("PRAGMA table_info(judgments)")]
            if cols[:3] != ["key", "model", "text"]:
                raise CacheError(f"judge cache {self.path}: unexpected table layout {cols}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open") from exc
        except CacheError:
            conn.close()
            raise
        return conn

    def _error(self, exc: sqlite3.Error, what: str) -> CacheError:
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            return CacheError(
                f"judge cache {self.path} is locked by another process (waited {self.busy_timeout:g}s "
                f"to {what}); wait for it to finish, set judge_cache to another file, or run with --no-cache")
        if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in msg or "malformed" in msg
                                                        or "corrupt" in msg):
            return CacheError(
                f"judge cache {self.path} is corrupt ({msg}); move it away (cached replies in it are lost) "
                "or set judge_cache to another file, or run with --no-cache")
        return CacheError(f"judge cache {self.path}: {what} failed ({msg})")

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedReply]:
        """Cached replies for those keys that are present."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, CachedReply] = {}
        with self._lock:
            try:
                for i in range(0, len(keys), _CHUNK):
                    chunk = keys[i:i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = ("SELECT key, text, prompt_tokens, completion_tokens, finish_reason, logprobs "
                           f"FROM judgments WHERE key IN ({marks})")
                    for key, text, pt, ct, fr, lp in self._conn.execute(sql, chunk):
                        out[key] = CachedReply(text, pt, ct, fr, _load_logprobs(lp))
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc
        return out

    def get(self, key: str) -> CachedReply | None:
        """One cached reply, or None."""
        return self.get_many([key]).get(key)

    def put(self, key: str, model: str, text: str, prompt_tokens: int, completion_tokens: int,
            finish_reason: str | None, logprobs: list | None = None) -> None:
        """Store (or replace) one reply and commit it immediately."""
        self.put_many([(key, model, text, prompt_tokens, completion_tokens, finish_reason, logprobs)])

    def put_many(self, rows: list[tuple]) -> None:
        """Store (key, model, text, prompt_tokens, completion_tokens, finish_reason[, logprobs]) rows in one
        commit."""
        now = time.time()
        rows = [(*r, None) if len(r) == 6 else tuple(r) for r in rows]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO judgments (key, model, text, prompt_tokens, completion_tokens, "
                        "finish_reason, created, logprobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(k, m, t, int(pt), int(ct), fr, now, _dump_logprobs(lp))
                         for k, m, t, pt, ct, fr, lp in rows])
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc, "write") from exc

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._conn.execute("SELECT count(*) FROM judgments").fetchone()[0])
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc

    def check(self) -> None:
        """Full integrity check (slow on large files); raises :class:`CacheError` when the file is damaged."""
        with self._lock:
            try:
                result = self._conn.execute("PRAGMA quick_check").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "check") from exc
        if result != [("ok",)]:
            raise CacheError(f"judge cache {self.path} is corrupt ({result[0][0]}); "
                             "move it away or use --no-cache")

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()
