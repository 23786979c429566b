"""The judge-failure account of a run: how many judgments of each LLM-judge metric failed, and why.

Every judge metric counts the items it asked about (``judge_judgments`` in its usage) and those left without a
value, by kind (``judge_failed_connection``, ``judge_failed_timeout``, ``judge_failed_http_500``,
``judge_failed_malformed``, ``judge_failed_unreadable`` for a reply with no readable value). ``capeval score``
prints one line about them on stderr (even with ``--quiet``) and exits with :data:`EXIT_JUDGE_FAILED` when a
metric got no successful judgment at all, or more than ``--max-failure-rate`` of them failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_JUDGE_FAILED = 3
DEFAULT_MAX_FAILURE_RATE = 0.2
_FAILED = "judge_failed_"


@dataclass(frozen=True)
class JudgeFailures:
    """One judge metric's account over every captioner and seed of a run."""

    metric: str
    judgments: int
    kinds: dict[str, int]  # failure kind -> count

    @property
    def failed(self) -> int:
        """Judgments left without a value."""
        return sum(self.kinds.values())

    @property
    def rate(self) -> float:
        """Share of judgments that failed (0 when nothing was asked)."""
        return self.failed / self.judgments if self.judgments else 0.0

    def describe(self) -> str:
        """``clair 12/40 failed (connection 10, unreadable 2)``."""
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"{self.metric} {self.failed}/{self.judgments} failed ({kinds})" if kinds else \
            f"{self.metric} 0/{self.judgments} failed"


def judge_failures(usage: dict[str, dict[str, float]]) -> list[JudgeFailures]:
    """The account of every metric whose usage has ``judge_judgments`` (a run's ``summary["usage"]``).

    Example:
        >>> [f.describe() for f in judge_failures({"clair": {"judge_judgments": 4, "judge_failed_timeout": 1},
        ...                                         "bleu": {}})]
        ['clair 1/4 failed (timeout 1)']
    """
    out = []
    for metric, counters in usage.items():
        if "judge_judgments" not in counters:
            continue
        kinds = {k[len(_FAILED):]: int(v) for k, v in counters.items() if k.startswith(_FAILED) and v}
        out.append(JudgeFailures(metric, int(counters["judge_judgments"]), kinds))
    return out


def endpoint_label(options: dict[str, Any]) -> str:
    """The judge endpoint a run used, for messages (the base URL, or the OpenAI API)."""
    url = options.get("judge_base_url")
    return str(url) if url else "the OpenAI API (https://api.openai.com/v1)"


def failure_line(accounts: list[JudgeFailures], endpoint: str) -> str | None:
    """One line about the run's judge failures, or None when there were none."""
    failing = [a for a in accounts if a.failed]
    if not failing:
        return None
    return f"judge failures at {endpoint}: " + "; ".join(a.describe() for a in failing)


def gate_problems(accounts: list[JudgeFailures], max_failure_rate: float) -> list[str]:
    """Why the run must not pass as a success: a metric with no successful judgment, or a failure rate above
    ``max_failure_rate``. Empty when the run is fine.

    Example:
        >>> gate_problems([JudgeFailures("clair", 10, {"connection": 10})], 0.2)
        ['clair: no successful judgment (10/10 failed: connection 10)']
        >>> gate_problems([JudgeFailures("clair", 10, {"unreadable": 3})], 0.2)
        ['clair: 30% of judgments failed (3/10: unreadable 3), above --max-failure-rate 0.2']
    """
    problems = []
    for a in accounts:
        if not a.judgments or not a.failed:
            continue
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(a.kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        if a.failed >= a.judgments:
            problems.append(f"{a.metric}: no successful judgment ({a.failed}/{a.judgments} failed: {kinds})")
        elif a.rate > max_failure_rate:
            problems.append(f"{a.metric}: {a.rate:.0%} of judgments failed ({a.failed}/{a.judgments}: {kinds}), "
                            f"above --max-failure-rate {max_failure_rate:g}")
    return problems
