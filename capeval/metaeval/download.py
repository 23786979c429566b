"""Fetch the public human-judgment files that ``capeval meta-eval --download`` uses.

Sources are pinned to a commit, so a download is the same file every time:

* Flickr8k-Expert and Pascal-50S: ``annotations/`` of the EXPERT repository (hjkim811/EXPERT, the JSON layout
  of CLIPScore / PAC-S / FLEUR); both are byte-identical to the copies capeval's reference numbers were
  measured on (checked by sha256).
* Flickr8k-CF: the same repository's ``crowdflower_flickr8k.json``. capeval's numbers were measured on the
  compact dump of the PAC-S release; the EXPERT copy is formatted differently, so it is checked by a hash of
  its parsed content, and a warning says so if even that differs.
* THumB 1.0: ``mscoco/`` of jungokasai/THumB (the references file is named ``.json`` there but is JSONL).

This needs internet and can't run in capeval's offline CI; everything after the download is tested.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from capeval.errors import CapevalError

log = logging.getLogger("capeval")

_EXPERT = "https://raw.githubusercontent.com/hjkim811/EXPERT/74bbef41209fce20551f2d707bc7642400d7eddf/annotations"
_THUMB = "https://raw.githubusercontent.com/jungokasai/THumB/fd099b4f311d9c4fd24e6c58ef0df038ec1615f3/mscoco"


@dataclass(frozen=True)
class Source:
    """One public file: where it comes from, the local name, and the hashes of the known-good copy."""

    url: str
    filename: str
    sha256: str  # of the bytes
    content_sha256: str  # of the parsed JSON / JSONL, dumped canonically (sorted keys, no spaces)


SOURCES: dict[str, list[Source]] = {
    "flickr8k-expert": [Source(
        f"{_EXPERT}/flickr8k.json", "flickr8k_expert.json",
        "35df408a422ba157df1ccf4364035a19d49d855e618b9514c6f0d7a8ac21e46c",
        "057c030ff5627af3bfdc2d4762ffa6411b9c34d5d464f711a0773e2380f5d1f3")],
    "flickr8k-cf": [Source(
        f"{_EXPERT}/crowdflower_flickr8k.json", "flickr8k_cf.json",
        "463642b3b6d72a30eba2faf2acc099c82c43319389f8eb39b0b9910c2641c3b8",
        "7e56ea4b0a8db61b075cba9649bc1b0232abc41974dee99c58c8b1ac34661f4a")],
    "pascal-50s": [Source(
        f"{_EXPERT}/pascal_50s.json", "pascal_50s.json",
        "ce39b0a4021ab5f1add1430580fe24fd3fc58de3d03179a37466eb6ddd63fcdd",
        "b467a7ee3ad37fb22e1b4582a6a73bcd78bd685eef3a4de97c62856ca459db56")],
    "thumb": [
        Source(f"{_THUMB}/mscoco_THumB-1.0.jsonl", "mscoco_THumB-1.0.jsonl",
               "463ebf947c793a541922ead33eb10a885e77c19e9c7d27cf89e034bfff643efa",
               "2e66f3e331678a97b0a8b83ea85501346a1a1b5f729ac06de67778bd4d279a27"),
        Source(f"{_THUMB}/mscoco_references.json", "mscoco_references.jsonl",
               "897672f1f53ed33a376237c33fabc89ebbd04b40e9ced82691c2e9c9324d8fdf",
               "157bdc7eaba420885a27dad3a98772f07982019aa495e36eabc347c713d36b4e"),
    ],
}


def default_data_dir() -> Path:
    """``$CAPEVAL_CACHE_DIR/metaeval``, else ``$XDG_CACHE_HOME/capeval/metaeval``, else ``~/.cache/...``."""
    if os.environ.get("CAPEVAL_CACHE_DIR"):
        return Path(os.environ["CAPEVAL_CACHE_DIR"]).expanduser() / "metaeval"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "capeval" / "metaeval"


def content_sha256(path: str | Path) -> str:
    """sha256 of a JSON or JSONL file's parsed content, dumped canonically (formatting-independent)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = [json.loads(line) for line in text.splitlines() if line.strip()]
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check(path: str | Path, source: Source) -> bool:
    """Whether ``path`` holds the known-good content of ``source`` (same bytes, or same parsed content)."""
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() == source.sha256:
        return True
    try:
        return content_sha256(path) == source.content_sha256
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _fetch(url: str, dest: Path, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CapevalError(f"download of {url} failed: {exc}") from exc


def download(dataset: str, data_dir: str | Path | None = None, *, timeout: float = 60.0) -> list[Path]:
    """Download a dataset's files into ``data_dir`` (default :func:`default_data_dir`); return their paths.

    A file already there with the known-good content is not fetched again. A download whose content differs
    from the copy capeval's reference numbers were measured on is kept, with a warning naming both hashes.
    """
    if dataset not in SOURCES:
        raise CapevalError(f"no download for {dataset!r}; known: {', '.join(SOURCES)}")
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    paths = []
    for source in SOURCES[dataset]:
        dest = folder / source.filename
        if dest.exists() and check(dest, source):
            paths.append(dest)
            continue
        log.info("downloading %s -> %s", source.url, dest)
        _fetch(source.url, dest, timeout)
        if not check(dest, source):
            got = hashlib.sha256(dest.read_bytes()).hexdigest()
            log.warning("%s differs from the copy capeval's reference numbers were measured on (sha256 %s, "
                        "expected %s); results may differ from the dataset card", dest, got, source.sha256)
        paths.append(dest)
    return paths
