"""Images as values of variables: bytes that know their media type.

An image variable holds an `Image` (a `bytes` subclass, so TextGrad code that compares or sends
raw bytes keeps working). Its media type comes from the file's magic bytes, never from a name.
A local file is read; a URL is fetched only when the user passes one (`image_path=URL`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

# Magic bytes of the formats Claude and OpenAI-compatible servers accept.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def media_type_of(data: bytes) -> str | None:
    """The image's media type from its first bytes, or None when it is not a known image."""
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class Image(bytes):
    """Image bytes with their media type (image/png, image/jpeg, image/gif, image/webp)."""

    media_type: str

    def __new__(cls, data: bytes, media_type: str | None = None) -> Image:
        kind = media_type or media_type_of(data)
        if kind is None:
            raise InputError(
                "these bytes are not a PNG, JPEG, GIF or WebP image: pass the bytes of an image "
                "file, or a text value (str) for text"
            )
        image = super().__new__(cls, data)
        image.media_type = kind
        return image

    def base64(self) -> str:
        return base64.b64encode(self).decode("ascii")

    def digest(self) -> str:
        """What a cache key holds for the image (never the bytes themselves)."""
        return hashlib.sha256(self).hexdigest()

    def __repr__(self) -> str:
        return f"<{self.media_type} image, {len(self)} bytes>"

    __str__ = __repr__


def load(image_path: str) -> Image:
    """Read a local image file, or fetch a URL (http/https) the user gave explicitly."""
    if image_path.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(image_path, follow_redirects=True, timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise InputError(f"cannot fetch the image {image_path}: {exc}") from None
        return Image(response.content)
    try:
        return Image(Path(image_path).expanduser().read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read the image file {image_path}: {exc.strerror}") from None


Part = str | Image


def as_parts(content: Any) -> tuple[Part, ...]:
    """TextGrad's engine content (a str, or a list of str and image bytes) as message parts."""
    if isinstance(content, str):
        return (content,)
    if isinstance(content, Sequence) and not isinstance(content, bytes):
        parts: list[Part] = []
        for item in content:
            if isinstance(item, Image | str):
                parts.append(item)
            elif isinstance(item, bytes):
                parts.append(Image(item))
            else:
                raise InputError(
                    f"a model's input is text or image bytes, not {type(item).__name__}"
                )
        return tuple(parts)
    raise InputError(f"a model's input is text or a list of text and images, not {content!r:.40}")


def text_of(parts: Sequence[Part]) -> str:
    """The text of the parts, an image shown as a placeholder (for prompts about the call)."""
    return "\n".join(p if isinstance(p, str) else f"[{p!r}]" for p in parts)
