"""Evidence kept on disk, named by its SHA-256: deduction photos and uploaded sign-in sheets.

An entry's `evidence` field holds `sha256:<64 hex digits>`, the digest of
the file as received, so anyone holding the file can check it is the one
the entry names, and the ledger stores no picture. Files are kept under the
`JIFEN_EVIDENCE_DIR` setting (default `./var/evidence`), one folder per
programme (a programme's staff see only their programme's evidence), as
`<programme>/<first two hex digits>/<64 hex digits>`. A file is written
once, to a temporary name and then renamed, so a reader never sees half of
one; keeping the same content again writes nothing. Nothing is ever
deleted here: a photo kept for a form that was never confirmed stays (it is
named by its content and does no harm).

A photo is untrusted input: it must be a JPEG, PNG, WebP or GIF that Pillow
can read, within `photos.MAX_PHOTO_BYTES` and `photos.MAX_PHOTO_PIXELS`.
It is kept as sent, not re-encoded: the digest is of the photo as taken (or
as the page shrank it before sending).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from flask import current_app
from PIL import Image, UnidentifiedImageError

from web.photos import MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, PhotoError

PREFIX = "sha256:"
REFERENCE = re.compile(r"^sha256:([0-9a-f]{64})$")
PHOTO_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
               "GIF": "image/gif"}


class EvidenceStore:
    """The evidence folder of one installation."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def keep(self, programme: str, content: bytes) -> str:
        """Keep `content` for `programme`; returns its reference, `sha256:<hex>`."""
        digest = hashlib.sha256(content).hexdigest()
        path = self._path(programme, digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".incoming-",
                                             delete=False) as incoming:
                incoming.write(content)
                incoming.flush()
                os.fsync(incoming.fileno())
            os.replace(incoming.name, path)
        return PREFIX + digest

    def find(self, programme: str, reference: str | None) -> Path | None:
        """The file a `sha256:<hex>` reference names, if kept here for `programme`."""
        found = REFERENCE.match(reference or "")
        if found is None:
            return None
        path = self._path(programme, found.group(1))
        return path if path.is_file() else None

    def _path(self, programme: str, digest: str) -> Path:
        # Programme codes are slugs starting with a letter or digit (ledger.programmes), so a
        # code is always one plain folder name.
        return self.directory / programme / digest[:2] / digest


def store() -> EvidenceStore:
    """The store of this app (`Settings.evidence_dir`)."""
    return EvidenceStore(current_app.extensions["jifen"].settings.evidence_dir)


def check_photo(content: bytes) -> str:
    """The media type of a photo fit to keep as evidence; raises `PhotoError` (`too_large`,
    `not_an_image`)."""
    if len(content) > MAX_PHOTO_BYTES:
        raise PhotoError("too_large")
    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
            if width * height > MAX_PHOTO_PIXELS:
                raise PhotoError("too_large")
            media_type = PHOTO_TYPES.get(image.format or "")
            image.verify()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError,
            SyntaxError):
        raise PhotoError("not_an_image") from None
    if media_type is None:
        raise PhotoError("not_an_image")
    return media_type


def media_type_of(path: Path) -> str | None:
    """The media type of a kept photo, or None if the file is not one (a sign-in sheet)."""
    try:
        with Image.open(path) as image:
            return PHOTO_TYPES.get(image.format or "")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        return None
