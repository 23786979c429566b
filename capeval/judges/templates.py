"""Judge prompt templates: Jinja2 files in judges/ (or a user's file) rendered into chat messages.

A template may define ``{% block system %}`` and ``{% block user %}``; each defined block becomes one chat
message of that role. A file without blocks is rendered whole as the single user message, so a paper's
prompt can be pasted in as is with ``{{ candidate }}``-style placeholders. The template's hash (sha256 of its
bytes) is part of every cache key and its name (the file stem, e.g. ``clair-v1``) goes into the signature;
a user's own file is named ``<stem>@<first 8 hex of its hash>``.

A template may also define ``{% block candidate %}``: text that ends the user message *after* the images.
Prefix-cache-aware templates (``-v2``) put what one image's captioners share (instructions, rubric,
references, the image) first and the candidate in this block, so a server caching prompt prefixes
evaluates only the candidate's tokens for the second and later captioners of an image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from capeval.assets import asset_dir
from capeval.errors import CapevalError

ROLES = ("system", "user")
TAIL = "candidate"


@dataclass
class JudgeTemplate:
    """A loaded prompt template."""

    name: str
    path: Path
    source: str
    hash: str
    builtin: bool
    _template: jinja2.Template = field(repr=False)

    def render_text(self, **variables: Any) -> str:
        """The whole template rendered as one string."""
        try:
            return self._template.render(**variables).strip()
        except jinja2.TemplateError as exc:
            raise CapevalError(f"judge template {self.path}: {exc}") from exc

    def messages(self, images: list[str] | None = None, **variables: Any) -> list[dict[str, Any]]:
        """Chat messages: the system and user blocks (or the whole file as the user message).

        ``images`` (data URLs or http(s) URLs) are appended to the user message as ``image_url`` parts.
        """
        try:
            names = (*ROLES, TAIL)
            blocks = {role: self._template.blocks[role] for role in names if role in self._template.blocks}
            if blocks:
                ctx = self._template.new_context(variables)
                texts = {role: "".join(fn(ctx)).strip() for role, fn in blocks.items()}
            else:
                texts = {"user": self._template.render(**variables).strip()}
        except jinja2.TemplateError as exc:
            raise CapevalError(f"judge template {self.path}: {exc}") from exc
        if not texts.get("user"):
            raise CapevalError(f"judge template {self.path}: renders an empty user message")
        out: list[dict[str, Any]] = []
        if texts.get("system"):
            out.append({"role": "system", "content": texts["system"]})
        tail = texts.get(TAIL, "")
        if images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": texts["user"]}]
            parts.extend({"type": "image_url", "image_url": {"url": url}} for url in images)
            if tail:
                parts.append({"type": "text", "text": tail})
            out.append({"role": "user", "content": parts})
        else:
            out.append({"role": "user", "content": f"{texts['user']}\n\n{tail}" if tail else texts["user"]})
        return out


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
                          trim_blocks=True, lstrip_blocks=True)


def load_template(name_or_path: str | Path) -> JudgeTemplate:
    """A template by shipped name (``clair-v1`` or ``clair-v1.jinja``) or by file path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    builtin = False
    if not path.is_file():
        shipped = asset_dir("judges")
        candidates = [shipped / text, shipped / f"{text}.jinja"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            known = sorted(p.stem for p in shipped.glob("*.jinja"))
            raise CapevalError(f"judge template {text!r} is neither a file nor a shipped template; "
                               f"shipped: {', '.join(known)}")
        path, builtin = found, True
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CapevalError(f"judge template {path}: can't read it ({exc})") from exc
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    try:
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise CapevalError(f"judge template {path}, line {exc.lineno}: {exc.message}") from exc
    name = path.stem if builtin else f"{path.stem}@{digest[:8]}"
    return JudgeTemplate(name, path, source, digest, builtin, template)
