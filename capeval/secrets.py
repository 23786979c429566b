"""Keeping credentials out of every file capeval writes: option filtering and command-line redaction."""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|authorization)", re.IGNORECASE)


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options safe to write: anything that looks like a credential is dropped."""
    return {k: v for k, v in options.items() if not SECRET_KEY.search(k)}


def redact_command(argv: list[str]) -> list[str]:
    """A command line with the value after any credential-like flag replaced."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
            continue
        if arg.startswith("--") and SECRET_KEY.search(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide = True
            continue
        out.append(arg)
    return out
