"""Reading a voucher's QR code from a photo, for phones whose browser cannot scan live.

Where the browser has no `BarcodeDetector`, the shop page asks for a photo
(`<input type=file accept=image/* capture=environment>`) and this module
finds the QR code in it with zxing-cpp, after Pillow has decoded the image
(JPEG, PNG, WebP, whatever the phone's camera wrote). EXIF orientation is
applied first; zxing also tries rotated and inverted codes itself.

A photo is untrusted input: its size is bounded by the request limit and
its pixel count by `MAX_PHOTO_PIXELS` before any pixel is decoded, so a
small file that claims to be huge (a decompression bomb) is refused.
"""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PHOTO_BYTES = 12 * 1024 * 1024
"""A 12-megapixel phone photo is 3-6 MB; the page shrinks photos before sending when it can."""
MAX_PHOTO_PIXELS = 50_000_000


class PhotoError(Exception):
    """The photo cannot be read, or holds no QR code; `reason` is `not_an_image`,
    `too_large` or `no_code`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_qr_codes(photo: bytes) -> list[str]:
    """The text of every QR code found in `photo`, in zxing's order; raises `PhotoError`."""
    try:
        with Image.open(io.BytesIO(photo)) as image:
            width, height = image.size
            if width * height > MAX_PHOTO_PIXELS:
                raise PhotoError("too_large")
            upright = ImageOps.exif_transpose(image).convert("L")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        raise PhotoError("not_an_image") from None
    texts = [barcode.text for barcode in zxingcpp.read_barcodes(
        upright, formats=zxingcpp.BarcodeFormat.QRCode) if barcode.text]
    if not texts:
        raise PhotoError("no_code")
    return texts
