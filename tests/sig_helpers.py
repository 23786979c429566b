"""Shared expectations of signature strings (judge metrics)."""

from __future__ import annotations


def judge_tail(template: str, base_url: str, max_tokens: int, fmt: str = "json_schema") -> str:
    """The judge part of a signature after the metric's own fields: template hash, max_tokens, format, host,
    then the metric version and capeval's."""
    from capeval import __version__
    from capeval.judges.templates import load_template
    from capeval.metrics.judge import endpoint_host

    sha = load_template(template).hash[:12]
    return (f"prompt_sha:{sha}|max_tokens:{max_tokens}|fmt:{fmt}|host:{endpoint_host(base_url)}|v:1|"
            f"capeval:{__version__}")
