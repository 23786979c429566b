"""Image thumbnails for the report's sample browser: find each sample's image in a folder, downscale with PIL."""

from __future__ import annotations

import base64
import io
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from capeval.errors import CapevalError

log = logging.getLogger("capeval")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass
class Thumbnails:
    """Data URLs per sample id, and what could not be shown (missing or unreadable images)."""

    urls: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)


class ImageIndex:
    """Finds a sample's image in a folder (searched recursively once).

    Order: the path recorded in the run (``images.json``) relative to the folder (or as is, when it is
    absolute or relative to the working directory and lies inside the folder), or by its file name; then a
    file whose stem equals the sample id; then one whose stem ends in the id as a number (COCO's
    ``COCO_val2014_000000000974.jpg`` for id ``974``).

    Only files inside the folder are ever read: a recorded path is a string from a candidate file, so one
    that leads outside (absolute, ``../``) is only looked up by its file name inside the folder. The test is
    on the path as written (symbolic links the user placed inside the folder are followed).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CapevalError(f"--images {self.folder}: not a folder")
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        self.by_number: dict[int, Path] = {}
        for root, _dirs, files in os.walk(self.folder):
            for name in sorted(files):
                if not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                path = Path(root) / name
                self.by_name.setdefault(name, path)
                stem = path.stem
                self.by_stem.setdefault(stem, path)
                match = _TRAILING_NUMBER.search(stem)
                if match:
                    self.by_number.setdefault(int(match.group(1)), path)

    def contains(self, path: Path) -> bool:
        """Whether ``path`` (made absolute, ``..`` collapsed, links not followed) lies inside the folder."""
        root = os.path.normpath(os.path.abspath(self.folder))
        target = os.path.normpath(os.path.abspath(path))
        return os.path.commonpath([root, target]) == root

    def find(self, sample_id: str, recorded: str | None = None) -> Path | None:
        """The image file of one sample, or None."""
        if recorded:
            rec = Path(recorded)
            for candidate in (self.folder / rec, rec):
                if self.contains(candidate) and candidate.is_file():
                    return candidate
            if rec.name in self.by_name:
                return self.by_name[rec.name]
        if sample_id in self.by_stem:
            return self.by_stem[sample_id]
        if sample_id.isdigit():
            return self.by_number.get(int(sample_id))
        return None


def thumbnail_data_url(path: Path, size: int = 160, quality: int = 70) -> str:
    """A JPEG thumbnail (longest side ``size`` px) as a ``data:image/jpeg;base64,...`` URL."""
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
        img = img.convert("RGB")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def make_thumbnails(
    folder: str | Path,
    sample_ids: Iterable[str],
    recorded: Mapping[str, str],
    size: int = 160,
) -> Thumbnails:
    """Thumbnails for every sample id whose image is found in ``folder``; the rest are listed, not fatal."""
    index = ImageIndex(folder)
    out = Thumbnails()
    for sid in sample_ids:
        path = index.find(sid, recorded.get(sid))
        if path is None:
            out.missing.append(sid)
            continue
        try:
            out.urls[sid] = thumbnail_data_url(path, size)
        except (OSError, ValueError) as exc:  # PIL raises OSError/UnidentifiedImageError for bad files
            out.unreadable[sid] = f"{path}: {exc}"
    if out.missing:
        log.warning("report: no image found in %s for %d of %d samples (e.g. id %r)", folder, len(out.missing),
                    len(out.missing) + len(out.urls) + len(out.unreadable), out.missing[0])
    if out.unreadable:
        first = next(iter(out.unreadable.values()))
        log.warning("report: %d images could not be read (e.g. %s)", len(out.unreadable), first)
    return out
