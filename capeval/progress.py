"""Progress display: a rich progress bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any


class Progress(AbstractContextManager):
    """Counts scoring steps (metric x captioner x seed); shows a bar only when enabled."""

    def __init__(self, total: int, enabled: bool | None = None, description: str = "scoring") -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self.total = total
        self.description = description

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def step(self, label: str) -> None:
        """Announce the step now starting."""
        if self._bar is not None:
            self._bar.update(self._task, description=label)

    def advance(self) -> None:
        """Mark one step done."""
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
