"""A supervised METEOR 1.5 JVM speaking pycocoevalcap's stdio protocol (``SCORE`` / ``EVAL`` lines).

pycocoevalcap's ``Meteor`` wrapper sends one ``SCORE`` line at a time, waits forever for each reply, never
releases its lock when Java dies and blocks at interpreter exit. This driver sends the same lines to the same
jar with the same flags (so the numbers are identical) but writes from a thread while reading (no pipe
deadlock), waits with a deadline, restarts a dead or stuck JVM and retries once, and is killed at exit.

Segments METEOR can't align: METEOR's aligner needs memory and time that grow much faster than the segment
length (with the 2 GB heap pycocoevalcap uses, one repetitive 16,000-word caption already ends the JVM with
``OutOfMemoryError``; a 1 MB caption always does, in pycocoevalcap too). So a segment longer than
:data:`LONG_SEGMENT_WORDS` words (candidate or reference) is scored on its own after the others, and when a
batch still fails twice, its segments are scored one by one. A segment the JVM can't score alone is a counted
failure (NaN, named by its sample id in a warning); every other segment gets METEOR's exact number, and the
corpus score is Java's aggregate over the scored segments.
"""

from __future__ import annotations

import atexit
import logging
import queue
import subprocess
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from capeval.errors import CapevalError
from capeval.java import java_executable, pycocoevalcap_jar

log = logging.getLogger("capeval")

METEOR_JAR = "meteor/meteor-1.5.jar"
METEOR_FLAGS = ["-", "-", "-stdio", "-l", "en", "-norm"]
#: Segments with more words than this (candidate or any reference) are scored alone, after the others.
LONG_SEGMENT_WORDS = 1000
N_STATS = 23  # segment statistics per SCORE reply
#: Seconds a lone long segment may take before it counts as a failure.
LONE_SEGMENT_TIMEOUT = 120.0

_live: weakref.WeakSet[MeteorProcess] = weakref.WeakSet()


def _clean_segment(text: str) -> str:
    """pycocoevalcap's hypothesis cleaning, applied to every segment: ``|||`` is the field separator."""
    return text.replace("|||", "").replace("  ", " ").replace("\n", " ")


def score_line(hypothesis: str, references: list[str]) -> str:
    """The ``SCORE ||| ref1 ||| ... ||| hyp`` line pycocoevalcap sends."""
    return " ||| ".join(("SCORE", " ||| ".join(_clean_segment(r) for r in references), _clean_segment(hypothesis)))


def _check_stats_line(line: str) -> None:
    """A ``SCORE`` reply is a line of numbers (METEOR's segment statistics); ValueError otherwise."""
    parts = line.split()
    if not parts:
        raise ValueError("an empty reply instead of segment statistics")
    float(parts[0])


class MeteorCrashed(CapevalError):
    """The METEOR JVM died or stopped answering."""


@dataclass
class MeteorScores:
    """Per-sample METEOR (NaN where the JVM could not score a segment), the corpus METEOR, and the failures."""

    per_sample: list[float]
    corpus: float
    failed: dict[str, str] = field(default_factory=dict)  # sample id (or index) -> why
    stats: list[str | None] = field(default_factory=list)  # each segment's SCORE reply (None: not scored)

    def statistics(self) -> np.ndarray:
        """``(n, 23)`` segment statistics (``MeteorStats.toString``); NaN rows where a segment failed."""
        rows = np.full((len(self.stats), N_STATS), np.nan)
        for k, line in enumerate(self.stats):
            if line is not None:
                values = [float(x) for x in line.split()]
                if len(values) != N_STATS:
                    raise MeteorCrashed(f"METEOR returned {len(values)} statistics, expected {N_STATS}")
                rows[k] = values
        return rows


class MeteorProcess:
    """One METEOR JVM; :meth:`score` returns per-sample scores and the corpus score."""

    def __init__(self, *, reply_timeout: float = 300.0, memory: str = "2G") -> None:
        self.reply_timeout = reply_timeout
        self.memory = memory
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        _live.add(self)

    def start(self) -> None:
        """Start the JVM now (it loads for several seconds); scoring waits for it."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def _start(self) -> None:
        jar = pycocoevalcap_jar(METEOR_JAR)
        cmd = [java_executable() or "java", "-jar", f"-Xmx{self.memory}", str(jar), *METEOR_FLAGS]
        self._proc = subprocess.Popen(
            cmd, cwd=str(jar.parent), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._read_loop, args=(self._proc, self._lines), daemon=True).start()

    @staticmethod
    def _read_loop(proc: subprocess.Popen, lines: queue.Queue) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", errors="replace").strip())
        lines.put(None)  # EOF: the JVM exited

    def _exchange(self, requests: list[str], n_replies: int) -> list[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc, lines = self._proc, self._lines
        assert proc is not None and proc.stdin is not None
        payload = "".join(r + "\n" for r in requests).encode("utf-8")

        def write() -> None:
            try:
                proc.stdin.write(payload)
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # the reader sees EOF and reports the crash

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        replies = []
        for _ in range(n_replies):
            try:
                line = lines.get(timeout=self.reply_timeout)
            except queue.Empty:
                raise MeteorCrashed(f"METEOR gave no reply within {self.reply_timeout:.0f} s") from None
            if line is None:
                raise MeteorCrashed(f"METEOR JVM exited (code {proc.poll()})")
            replies.append(line)
        writer.join()
        return replies

    def _stats_batch(self, hypotheses: Sequence[str], references: Sequence[list[str]]) -> list[str]:
        return self._exchange([score_line(h, r) for h, r in zip(hypotheses, references, strict=True)],
                              len(hypotheses))

    def _eval(self, stats: list[str]) -> tuple[list[float], float]:
        replies = self._exchange(["EVAL ||| " + " ||| ".join(stats)], len(stats) + 1)
        return [float(x) for x in replies[:-1]], float(replies[-1])

    def _score_once(self, hypotheses: list[str], references: list[list[str]]) -> tuple[list[float], float]:
        return self._eval(self._stats_batch(hypotheses, references))

    def _alone(self, hypothesis: str, references: list[str], timeout: float) -> tuple[str | None, str]:
        """One segment's statistics line in a JVM of its own making (restarted after a failure), or None."""
        saved, self.reply_timeout = self.reply_timeout, min(self.reply_timeout, timeout)
        try:
            (line,) = self._stats_batch([hypothesis], [references])
            _check_stats_line(line)
            return line, ""
        except (MeteorCrashed, ValueError) as exc:
            self.close()
            return None, str(exc) or type(exc).__name__
        finally:
            self.reply_timeout = saved

    def score_segments(self, hypotheses: list[str], references: list[list[str]],
                       ids: Sequence[str] | None = None) -> MeteorScores:
        """Per-sample and corpus METEOR; segments the JVM can't score are NaN and listed in ``failed``."""
        n = len(hypotheses)
        if not n:
            return MeteorScores([], float("nan"))
        names = [str(i) for i in ids] if ids is not None else [f"#{k}" for k in range(n)]
        stats: list[str | None] = [None] * n
        failed: dict[str, str] = {}
        with self._lock:
            long = {k for k in range(n) if max(len(x.split()) for x in (hypotheses[k], *references[k]))
                    > LONG_SEGMENT_WORDS}
            normal = [k for k in range(n) if k not in long]
            if normal:
                try:
                    got = self._stats_with_retry([hypotheses[k] for k in normal], [references[k] for k in normal])
                    for k, line in zip(normal, got, strict=True):
                        stats[k] = line
                except MeteorCrashed as exc:
                    log.warning("METEOR failed twice on a batch of %d segments (%s); scoring them one by one",
                                len(normal), exc)
                    long.update(normal)
            for k in sorted(long):
                line, why = self._alone(hypotheses[k], references[k], LONE_SEGMENT_TIMEOUT)
                if line is None:
                    words = max(len(x.split()) for x in (hypotheses[k], *references[k]))
                    failed[names[k]] = f"METEOR could not score this segment ({words} words): {why}"
                    log.warning("METEOR: sample id %r can't be scored (%s); it is NaN and counted as a failure",
                                names[k], failed[names[k]])
                stats[k] = line
            scored = [k for k in range(n) if stats[k] is not None]
            if not scored:
                raise MeteorCrashed(f"METEOR could not score any of {n} segments (e.g. id {names[0]!r}: "
                                    f"{failed.get(names[0], 'unknown')})")
            try:
                values, corpus = self._eval([stats[k] for k in scored])  # type: ignore[misc]
            except (MeteorCrashed, ValueError):
                self.close()
                values, corpus = self._eval([stats[k] for k in scored])  # type: ignore[misc]
        per_sample = [float("nan")] * n
        for k, v in zip(scored, values, strict=True):
            per_sample[k] = v
        return MeteorScores(per_sample, corpus, failed, stats)

    def _stats_with_retry(self, hypotheses: list[str], references: list[list[str]]) -> list[str]:
        try:
            return self._checked_stats(hypotheses, references)
        except (MeteorCrashed, ValueError) as exc:
            log.warning("METEOR failed (%s); restarting the JVM and retrying once", exc)
            self.close()
            try:
                return self._checked_stats(hypotheses, references)
            except (MeteorCrashed, ValueError) as exc2:
                self.close()
                raise MeteorCrashed(f"METEOR failed twice: {exc2}") from exc2

    def _checked_stats(self, hypotheses: list[str], references: list[list[str]]) -> list[str]:
        lines = self._stats_batch(hypotheses, references)
        for line in lines:
            _check_stats_line(line)
        return lines

    def score(self, hypotheses: list[str], references: list[list[str]]) -> tuple[list[float], float]:
        """Per-sample METEOR and the corpus METEOR (Java's aggregate over all samples' statistics).

        A segment the JVM can't score is NaN (see :meth:`score_segments`, which also says which and why).
        """
        result = self.score_segments(hypotheses, references)
        return result.per_sample, result.corpus

    def java_aggregate(self, stats: np.ndarray) -> tuple[list[float], float]:
        """Java's own per-segment and aggregate scores of statistics rows (an ``EVAL`` line), for tests."""
        texts = [" ".join(repr(float(x)) for x in row) for row in np.asarray(stats)]
        with self._lock:
            return self._eval(texts)

    def close(self) -> None:
        """Kill the JVM (safe to call twice)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
            proc.kill()
            proc.wait()


@atexit.register
def _kill_all() -> None:
    for p in list(_live):
        p.close()
