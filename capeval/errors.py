"""Errors capeval raises: each names the file, the sample id and the problem."""

from __future__ import annotations


class CapevalError(Exception):
    """Base class for every error capeval reports to a user."""


class InputError(CapevalError):
    """Bad input data: the message names the file, the id (when known) and the problem."""

    def __init__(self, problem: str, *, path: str | None = None, sample_id: object = None) -> None:
        self.problem = problem
        self.path = path
        self.sample_id = sample_id
        parts = []
        if path is not None:
            parts.append(str(path))
        if sample_id is not None:
            parts.append(f"id {sample_id!r}")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class MetricUnavailable(CapevalError):
    """A metric cannot run on this machine; the message says why."""


class UnknownMetric(CapevalError):
    """A metric name that is not registered."""
