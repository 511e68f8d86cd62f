"""Reading a voucher's QR code from a photo (no database)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from redemption import qr
from web.photos import MAX_PHOTO_PIXELS, PhotoError, read_qr_codes

TOKEN = "v4.public." + "A" * 380


def _saved(image: Image.Image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def test_the_png_the_api_serves_reads_back():
    assert read_qr_codes(qr.qr_png(TOKEN)) == [TOKEN]


def test_a_sideways_jpeg_with_exif_orientation_and_a_small_code_reads():
    code = Image.open(io.BytesIO(qr.qr_png(TOKEN, scale=4))).convert("RGB")
    photo = Image.new("RGB", (code.width * 3, code.height * 2), (90, 100, 80))
    photo.paste(code, (code.width, code.height // 2))
    exif = Image.Exif()
    exif[0x0112] = 6
    assert read_qr_codes(_saved(photo.rotate(-90, expand=True), "JPEG", quality=85,
                                exif=exif.tobytes())) == [TOKEN]


def test_a_photo_with_no_code_is_said_to_have_none():
    with pytest.raises(PhotoError) as refused:
        read_qr_codes(_saved(Image.new("L", (400, 300), 255), "PNG"))
    assert refused.value.reason == "no_code"


@pytest.mark.parametrize("data", [b"", b"GIF89a not really", b"\x89PNG\r\n\x1a\n broken"])
def test_what_is_not_an_image_is_said_to_be_none(data):
    with pytest.raises(PhotoError) as refused:
        read_qr_codes(data)
    assert refused.value.reason == "not_an_image"


def test_a_small_file_claiming_a_huge_picture_is_refused_before_it_is_decoded():
    side = int(MAX_PHOTO_PIXELS ** 0.5) + 10
    bomb = _saved(Image.new("1", (side, side)), "PNG", optimize=True)
    assert len(bomb) < 2_000_000
    with pytest.raises(PhotoError) as refused:
        read_qr_codes(bomb)
    assert refused.value.reason == "too_large"
