"""Image folders for the baseline captioners: listing images by id (file stem) and opening them with PIL."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from capeval.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def list_images(images_dir: str | Path) -> list[tuple[str, Path]]:
    """``(image_id, path)`` for every image file in a folder (not recursive), id = file stem, sorted by id."""
    root = Path(images_dir)
    if not root.is_dir():
        raise InputError("images folder not found", path=str(root))
    found: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            if p.stem in found:
                raise InputError(f"two images share the id {p.stem!r}: {found[p.stem].name} and {p.name}",
                                 path=str(root))
            found[p.stem] = p
    if not found:
        raise InputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder", path=str(root))
    return sorted(found.items())


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB, with a clear error naming the file when it can't be read."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read image ({exc})", path=str(path)) from None
