"""QR codes drawn into the page itself, as inline SVG: a voucher on the resident's screen, the
wallet's address on a points card.

Server-rendered by segno at the error correction level vouchers use
(`redemption.qr`), with the quiet zone the specification asks for and a
white background, so a scanner reads it off a phone screen in any theme.
No size is written into the SVG (only a viewBox): the stylesheet makes it as
wide as the screen allows. No `style` attribute either, which the pages'
Content-Security-Policy would refuse.
"""

from __future__ import annotations

import io

import segno
from markupsafe import Markup

from redemption.qr import ERROR_CORRECTION, QUIET_ZONE_MODULES


def qr_svg(text: str, title: str, css_class: str = "qr") -> Markup:
    """An `<svg>` element (no XML declaration) showing `text` as a QR code; `title` is what
    a screen reader says."""
    buffer = io.BytesIO()
    segno.make_qr(text, error=ERROR_CORRECTION, boost_error=False).save(
        buffer, kind="svg", xmldecl=False, omitsize=True, border=QUIET_ZONE_MODULES,
        svgclass=css_class, lineclass=None, nl=False, title=title, light="#fff")
    return Markup(buffer.getvalue().decode("utf-8"))
