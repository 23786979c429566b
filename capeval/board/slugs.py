"""Safe, collision-free slugs: a captioner or submission name never becomes a raw file or URL path."""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_STEM = 40


def slugify(*parts: str) -> str:
    """``[a-z0-9-]`` stem of the last part plus 10 hex digits of the sha256 of all parts (so names that
    differ only in punctuation, case or script never share a slug, and a slug never holds ``/``, ``..``,
    ``%`` or a drive letter).

    Example:
        >>> slugify("main", "VinVL-large", "1")[:14], len(slugify("main", "VinVL-large", "1"))
        ('vinvl-large-1-', 24)
        >>> slugify("main", "../../etc/passwd", "1")[:13]
        'etc-passwd-1-'
    """
    text = unicodedata.normalize("NFKD", " ".join(parts[-2:])).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:MAX_STEM].strip("-") or "x"
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:10]
    return f"{stem}-{digest}"
