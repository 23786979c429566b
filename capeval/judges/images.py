"""Finding each sample's image (``--images DIR`` or paths/URLs in the input) and encoding it as a data URL."""

from __future__ import annotations

import base64
import mimetypes
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

from capeval.errors import InputError
from capeval.judges.protocol import image_data_url

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
MAX_URL_BYTES = 20 * 1024 * 1024


def _coco_names(sample_id: str) -> list[str]:
    if not sample_id.isdigit():
        return []
    n = int(sample_id)
    return [f"{n:012d}", f"COCO_val2014_{n:012d}", f"COCO_train2014_{n:012d}"]


def find_image(sample_id: str, given: str | None, images_dir: str | Path | None) -> str:
    """The image of a sample: an http(s) URL or an existing file path; a clear error naming the id otherwise.

    Looked up in order: the path or URL given in the input (relative paths against ``images_dir``), then
    ``images_dir/<id>.<ext>``, then COCO file names (``000000123456.jpg``, ``COCO_val2014_...``).
    """
    if given:
        if given.startswith(("http://", "https://", "data:")):
            return given
        p = Path(given).expanduser()
        for cand in ([p] if p.is_absolute() or images_dir is None else [Path(images_dir) / p, p]):
            if cand.is_file():
                return str(cand)
    if images_dir is not None:
        root = Path(images_dir).expanduser()
        if not root.is_dir():
            raise InputError("the images folder does not exist", path=str(root))
        for stem in [sample_id, *_coco_names(sample_id)]:
            for ext in EXTENSIONS:
                cand = root / f"{stem}{ext}"
                if cand.is_file():
                    return str(cand)
    where = f"in {images_dir}" if images_dir else "(no --images folder given)"
    detail = f"; the input names {given!r}" if given else ""
    raise InputError(f"no image found {where}{detail}", sample_id=sample_id)


def to_data_url(location: str, timeout: float = 30.0) -> str:
    """A ``data:`` URL for a file path or an http(s) URL (fetched; offline that fails with a clear error)."""
    if location.startswith("data:"):
        return location
    if not location.startswith(("http://", "https://")):
        return image_data_url(location)
    try:
        with urllib.request.urlopen(location, timeout=timeout) as resp:
            data = resp.read(MAX_URL_BYTES + 1)
            mime = resp.headers.get_content_type()
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"can't fetch image ({exc})", path=location) from exc
    if len(data) > MAX_URL_BYTES:
        raise InputError(f"image larger than {MAX_URL_BYTES // (1024 * 1024)} MB", path=location)
    if not mime.startswith("image/"):
        mime = mimetypes.guess_type(location)[0] or ""
    if not mime.startswith("image/"):
        raise InputError("the URL did not return an image", path=location)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class ImageResolver:
    """Data URLs per sample id, kept in a bounded LRU so that seeds and captioners reuse the encoding."""

    def __init__(self, images_dir: str | Path | None, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.images_dir = images_dir
        self.max_bytes = max_bytes
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0

    def data_url(self, sample_id: str, given: str | None) -> str:
        """The sample's image as a data URL."""
        location = find_image(sample_id, given, self.images_dir)
        url = self._cache.get(location)
        if url is not None:
            self._cache.move_to_end(location)
            return url
        url = to_data_url(location)
        self._cache[location] = url
        self._bytes += len(url)
        while self._bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= len(old)
        return url
