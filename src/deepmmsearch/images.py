"""Loading input images safely: from a path, an http(s) URL or a data URL, with limits on size and pixels."""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from deepmmsearch.errors import InputError

MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_IMAGE_PIXELS = 64_000_000  # far above any camera photo; a "decompression bomb" declares far more


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = MAX_IMAGE_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    timeout_s: float = 30.0


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def read_image_bytes(ref: str, limits: ImageLimits = ImageLimits()) -> bytes:
    """The raw bytes behind an image reference (path, http(s) URL or data URL), capped at ``max_bytes``.

    URLs are fetched as given, private hosts included: the user's own reference. The server, which must not reach
    inward for its clients, fetches them through the guarded web client instead."""
    if ref.startswith("data:"):
        try:
            header, payload = ref.split(",", 1)
            data = base64.b64decode(payload, validate=False) if ";base64" in header else payload.encode()
        except ValueError as e:
            raise InputError(f"malformed data URL: {e}") from None
    elif is_url(ref):
        data = _download(ref, limits)
    else:
        path = Path(ref)
        if not path.is_file():
            raise InputError(f"{ref}: no such image file")
        if path.stat().st_size > limits.max_bytes:
            raise InputError(f"{ref}: image file is larger than {limits.max_bytes // 2**20} MiB")
        data = path.read_bytes()
    if len(data) > limits.max_bytes:
        raise InputError(f"{_short(ref)}: image is larger than {limits.max_bytes // 2**20} MiB")
    return data


def _download(url: str, limits: ImageLimits) -> bytes:
    import httpx

    chunks, total = [], 0
    try:
        with (
            httpx.Client(timeout=limits.timeout_s, follow_redirects=True, max_redirects=5) as client,
            client.stream("GET", url) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > limits.max_bytes:
                    raise InputError(f"{url}: image is larger than {limits.max_bytes // 2**20} MiB")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TooManyRedirects:
        raise InputError(f"{url}: more than 5 redirects") from None
    except httpx.HTTPError as e:
        raise InputError(f"{url}: could not download the image ({type(e).__name__}: {e})") from None


def decode_image(data: bytes, ref: str = "image", limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Decode image bytes to RGB, refusing non-images, truncated files and decompression bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # read from the header, before any pixel is decoded
            if width * height > limits.max_pixels:
                raise InputError(
                    f"{_short(ref)}: image declares {width}x{height} pixels, more than the limit of "
                    f"{limits.max_pixels:,}; refusing it (decompression bomb?)"
                )
            image.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{_short(ref)}: not an image file (or an unsupported format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{_short(ref)}: image has too many pixels; refusing it (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{_short(ref)}: image is truncated or corrupt ({e})") from None
    return image.convert("RGB")


def load_image(ref: str, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Load an image reference as an RGB PIL image, with one clear :class:`InputError` for anything wrong."""
    return decode_image(read_image_bytes(ref, limits), ref, limits)


def to_data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """Encode an image as a data URL, the form OpenAI-compatible servers accept inline."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = "image/png" if fmt.upper() == "PNG" else f"image/{fmt.lower()}"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def _short(ref: str) -> str:
    return ref if len(ref) < 80 else ref[:60] + "..."
