"""A supervised METEOR 1.5 JVM speaking pycocoevalcap's stdio protocol (``SCORE`` / ``EVAL`` lines).

pycocoevalcap's ``Meteor`` wrapper sends one ``SCORE`` line at a time, waits forever for each reply, never
releases its lock when Java dies and blocks at interpreter exit. This driver sends the same lines to the same
jar with the same flags (so the numbers are identical) but writes from a thread while reading (no pipe
deadlock), waits with a deadline, restarts a dead or stuck JVM and retries once, and is killed at exit.
"""

from __future__ import annotations

import atexit
import logging
import queue
import subprocess
import threading
import weakref

import numpy as np

from capeval.errors import CapevalError
from capeval.java import java_executable, pycocoevalcap_jar

log = logging.getLogger("capeval")

METEOR_JAR = "meteor/meteor-1.5.jar"
METEOR_FLAGS = ["-", "-", "-stdio", "-l", "en", "-norm"]
N_STATS = 23  # segment statistics per SCORE reply

_live: weakref.WeakSet[MeteorProcess] = weakref.WeakSet()


def _clean_segment(text: str) -> str:
    """pycocoevalcap's hypothesis cleaning, applied to every segment: ``|||`` is the field separator."""
    return text.replace("|||", "").replace("  ", " ").replace("\n", " ")


def score_line(hypothesis: str, references: list[str]) -> str:
    """The ``SCORE ||| ref1 ||| ... ||| hyp`` line pycocoevalcap sends."""
    return " ||| ".join(("SCORE", " ||| ".join(_clean_segment(r) for r in references), _clean_segment(hypothesis)))


class MeteorCrashed(CapevalError):
    """The METEOR JVM died or stopped answering."""


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

    def _score_once(self, hypotheses: list[str], references: list[list[str]]) -> tuple[list[str], list[float], float]:
        stats = self._exchange([score_line(h, r) for h, r in zip(hypotheses, references, strict=True)],
                               len(hypotheses))
        replies = self._exchange(["EVAL ||| " + " ||| ".join(stats)], len(hypotheses) + 1)
        return stats, [float(x) for x in replies[:-1]], float(replies[-1])

    def _run(self, hypotheses: list[str], references: list[list[str]]) -> tuple[list[str], list[float], float]:
        with self._lock:
            try:
                return self._score_once(hypotheses, references)
            except (MeteorCrashed, ValueError) as exc:
                log.warning("METEOR failed (%s); restarting the JVM and retrying once", exc)
                self.close()
                try:
                    return self._score_once(hypotheses, references)
                except (MeteorCrashed, ValueError) as exc2:
                    self.close()
                    raise MeteorCrashed(f"METEOR failed twice: {exc2}") from exc2

    def score(self, hypotheses: list[str], references: list[list[str]]) -> tuple[list[float], float]:
        """Per-sample METEOR and the corpus METEOR (Java's aggregate over all samples' statistics)."""
        if not hypotheses:
            return [], float("nan")
        _, per_sample, corpus = self._run(hypotheses, references)
        return per_sample, corpus

    def statistics(self, hypotheses: list[str], references: list[list[str]],
                   sample_ids: list[str] | None = None) -> tuple[np.ndarray, list[float]]:
        """``(n, 23)`` segment statistics (``MeteorStats.toString``) and Java's per-segment scores."""
        if not hypotheses:
            return np.zeros((0, N_STATS)), []
        lines, per_sample, _ = self._run(hypotheses, references)
        try:
            rows = np.array([[float(x) for x in line.split()] for line in lines], dtype=np.float64)
        except ValueError as exc:
            raise MeteorCrashed(f"METEOR returned unreadable statistics ({exc})") from exc
        if rows.shape != (len(hypotheses), N_STATS):
            raise MeteorCrashed(f"METEOR returned statistics of shape {rows.shape}, expected "
                                f"({len(hypotheses)}, {N_STATS})")
        return rows, per_sample

    def java_aggregate(self, stats: np.ndarray) -> tuple[list[float], float]:
        """Java's own per-segment and aggregate scores of statistics rows (an ``EVAL`` line), for tests."""
        texts = [" ".join(repr(float(x)) for x in row) for row in np.asarray(stats)]
        with self._lock:
            replies = self._exchange(["EVAL ||| " + " ||| ".join(texts)], len(texts) + 1)
        return [float(x) for x in replies[:-1]], float(replies[-1])

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
