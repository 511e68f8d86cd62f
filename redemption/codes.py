"""Short codes: the voucher typed by hand when the camera fails.

Eleven characters of Douglas Crockford's base32, shown `XXXX-XXXX-XXX`:
ten random data characters (50 bits) and one check character, the data's
value modulo 37 written with Crockford's check alphabet (the 32 digits, then
`*`, `~`, `$`, `=`, `U`). Because 37 is prime and larger than any digit
difference, every single mistyped character and every swap of two
neighbours changes the remainder, so a typo is always caught before the
database is asked. Reading is forgiving the way Crockford intends: case,
hyphens and spaces are ignored, `O` reads as `0`, and `I` and `L` as `1`.

A short code is a bearer secret like the token (50 random bits); it is
unique per programme, and the API must rate-limit guesses.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_ALPHABET = ALPHABET + "*~$=U"
DATA_CHARS = 10
CODE_CHARS = DATA_CHARS + 1
GROUPS = (4, 4, 3)
"""How the code is shown: XXXX-XXXX-XXX."""

_ALIASES = {"O": "0", "I": "1", "L": "1"}
_VALUE = {symbol: value for value, symbol in enumerate(ALPHABET)}


class ShortCodeError(ValueError):
    """The text is not a well-formed short code; `reason` says why, for the person typing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_short_code() -> str:
    """A fresh random code in canonical form (11 characters, no hyphens)."""
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_CHARS))
    return data + check_character(data)


def check_character(data: str) -> str:
    """Crockford's check symbol: the value of `data` modulo 37."""
    value = 0
    for symbol in data:
        value = value * 32 + _VALUE[symbol]
    return CHECK_ALPHABET[value % 37]


def display(code: str) -> str:
    """`ABCD-EFGH-JKM`: the canonical code grouped for reading aloud."""
    parts, start = [], 0
    for size in GROUPS:
        parts.append(code[start : start + size])
        start += size
    return "-".join(parts)


def parse(text: str) -> str:
    """The canonical code `text` spells; raises `ShortCodeError` on a typo or a bad shape."""
    if not isinstance(text, str):
        raise ShortCodeError("a short code is text")
    cleaned = "".join(text.split()).replace("-", "").upper()
    if len(cleaned) != CODE_CHARS:
        raise ShortCodeError(f"a short code has {CODE_CHARS} characters, not {len(cleaned)}")
    data = "".join(_ALIASES.get(symbol, symbol) for symbol in cleaned[:DATA_CHARS])
    check = _ALIASES.get(cleaned[DATA_CHARS], cleaned[DATA_CHARS])
    for position, symbol in enumerate(data, start=1):
        if symbol not in _VALUE:
            raise ShortCodeError(f"character {position} ({symbol!r}) is not used in short codes")
    if check not in CHECK_ALPHABET:
        raise ShortCodeError(f"the last character ({check!r}) is not a check character")
    if check_character(data) != check:
        raise ShortCodeError("the check character does not match: a character is mistyped")
    return data + check
