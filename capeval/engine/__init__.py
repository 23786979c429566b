"""Execution engines of a scoring run: ``local`` (this process) and ``ray`` (sharded over a Ray cluster)."""

ENGINES = ("local", "ray")
