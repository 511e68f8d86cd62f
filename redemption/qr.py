"""QR codes of voucher tokens, as PNG and SVG, drawn by segno.

Error correction level M (15 % of the code can be damaged or covered and it
still reads): a phone screen's glare and a cracked screen protector are the
usual damage. At the default scale of 8 pixels per module a voucher token
(about 400 characters, a version 13-15 symbol) is some 650 pixels square
with its quiet zone, comfortably readable from a phone held to a scanner.
"""

from __future__ import annotations

import io

import segno

ERROR_CORRECTION = "m"
DEFAULT_SCALE = 8
QUIET_ZONE_MODULES = 4
"""The border the QR specification requires around the symbol."""


def qr_png(token: str, scale: int = DEFAULT_SCALE) -> bytes:
    """The token as a PNG image, `scale` pixels per module."""
    buffer = io.BytesIO()
    _symbol(token).save(buffer, kind="png", scale=scale, border=QUIET_ZONE_MODULES)
    return buffer.getvalue()


def qr_svg(token: str, scale: int = DEFAULT_SCALE) -> bytes:
    """The token as an SVG document (UTF-8), `scale` user units per module."""
    buffer = io.BytesIO()
    _symbol(token).save(buffer, kind="svg", scale=scale, border=QUIET_ZONE_MODULES,
                        title="voucher")
    return buffer.getvalue()


def _symbol(token: str) -> segno.QRCode:
    # boost_error off: the level stays M as documented, whatever room the version leaves.
    return segno.make_qr(token, error=ERROR_CORRECTION, boost_error=False)
