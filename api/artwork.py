"""Podcast artwork checks (Apple's rules): JPEG or PNG, square, 1400–3000 px, RGB.

:func:`check_artwork` reads only what Pillow needs to answer and returns what the show stores;
each refusal is an :class:`~core.errors.InvalidInput` (422) whose code says which rule failed
and whose message says what to do. Pure apart from decoding bytes already in memory.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, UnidentifiedImageError

from core.errors import InvalidInput

MIN_SIDE: Final = 1400
MAX_SIDE: Final = 3000
#: Largest upload accepted (413 above). Apple asks for small files; 3000 px JPEGs fit easily.
MAX_ARTWORK_BYTES: Final = 8 * 1024 * 1024

_FORMATS: Final = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png")}


@dataclass(frozen=True)
class Artwork:
    """A checked image."""

    extension: str
    """``jpg`` or ``png``: the key's extension matches the type (Apple checks it)."""
    content_type: str
    width: int
    height: int


def check_artwork(data: bytes) -> Artwork:
    """The artwork's type and size, or InvalidInput naming the first rule it breaks."""
    try:
        # Image.open reads the header only; nothing is decoded before the size checks, so a
        # huge (decompression-bomb) image is refused by its declared size.
        with Image.open(io.BytesIO(data)) as image:
            kind = _FORMATS.get(image.format or "")
            if kind is None:
                raise InvalidInput(
                    f"artwork must be a JPEG or PNG image, got {image.format or 'an unknown type'}",
                    code="artwork_wrong_type",
                )
            width, height = image.size
            if width != height:
                raise InvalidInput(
                    f"artwork must be square; it is {width}×{height} px", code="artwork_not_square"
                )
            if not MIN_SIDE <= width <= MAX_SIDE:
                raise InvalidInput(
                    f"artwork must be {MIN_SIDE}–{MAX_SIDE} px on each side; it is {width} px",
                    code="artwork_wrong_size",
                )
            if image.mode != "RGB":
                raise InvalidInput(
                    f"artwork must use the RGB colour space; it is {image.mode}"
                    " (convert it to RGB without transparency)",
                    code="artwork_not_rgb",
                )
            image.verify()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise InvalidInput(
            f"artwork is not a readable image ({exc})", code="artwork_wrong_type"
        ) from exc
    extension, content_type = kind
    return Artwork(extension, content_type, width, height)
