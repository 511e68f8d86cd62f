"""Canonical JSON bytes and the hashes built on them.

Every hash in the ledger (entry hashes, Merkle leaves, signed checkpoints)
is taken over bytes produced here, so two parties that hold the same JSON
value always hash the same bytes. The encoding is RFC 8785, the JSON
Canonicalization Scheme (JCS): object keys sorted by UTF-16 code units, no
insignificant whitespace, minimal string escaping, and numbers written the
way ECMAScript's Number::toString writes IEEE 754 doubles.

This module imports only the Python standard library because the offline
verifier, which has nothing but the standard library and `cryptography`,
reuses it unchanged.

Two entry points:

* `canonicalize` is the full scheme: any JSON value, floats included.
* `check_plain_json` + `encode_plain` is the fast path for "plain ledger
  JSON" (integers only, ASCII object keys), which is what the ledger itself
  stores; for such values `encode_plain(v) == canonicalize(v)`.

Both accept exactly the built-in types `json.loads` produces (dict, list,
str, int, float, bool, None); subclasses such as `IntEnum` or `StrEnum`
are refused, so a custom `__str__` can never leak into hashed bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

__all__ = [
    "EMPTY_ROOT",
    "MAX_SAFE_INTEGER",
    "CanonicalError",
    "canonicalize",
    "check_plain_json",
    "encode_plain",
    "format_number",
    "leaf_hash",
    "node_hash",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer magnitude accepted: every integer up to it is an exact double,
so any JSON parser (JavaScript's included) reads it back unchanged."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Merkle tree hash of the empty tree, SHA-256 of no bytes (RFC 6962 2.1)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class CanonicalError(ValueError):
    """A value cannot be canonicalized; `path` names where, like `$.postings[1].amount`."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class _Invalid(Exception):
    """Internal: carries a problem up the recursion, collecting path segments.

    Paths are assembled only when something is wrong, so valid values pay
    nothing for error reporting.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.segments_innermost_first: list[str | int] = []


def _render_path(prefix: str, segments: list[str | int]) -> str:
    parts = [prefix]
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _IDENTIFIER.match(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{json.dumps(segment)}]")
    return "".join(parts)


def _error_at(prefix: str, invalid: _Invalid) -> CanonicalError:
    path = _render_path(prefix, invalid.segments_innermost_first[::-1])
    return CanonicalError(path, invalid.problem)


def _check_text(text: str, is_key: bool = False) -> None:
    """Refuse lone surrogates: they have no UTF-8 encoding, so no canonical bytes."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        what = f"object key {json.dumps(text)}" if is_key else "string"
        code_point = ord(text[error.start])
        raise _Invalid(
            f"{what} contains a lone surrogate U+{code_point:04X} at character {error.start}"
        ) from None


def _check_integer(value: int) -> None:
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        # Past ~4300 digits str() itself refuses (sys.set_int_max_str_digits).
        shown = str(value) if value.bit_length() <= 256 else f"of {value.bit_length()} bits"
        raise _Invalid(
            f"integer {shown} is outside the exact IEEE 754 double range "
            f"(|x| must be < 2**53); larger numbers would not survive a JSON round trip"
        )


def _describe_type(value: object) -> str:
    return type(value).__qualname__


def format_number(value: int | float) -> str:
    """Serialize a number as RFC 8785 3.2.2.3 requires (ECMAScript Number::toString).

    Integers must satisfy |x| < 2**53 and print as plain decimal. Floats use the
    shortest digit string that reads back as the same double (Python's `repr`
    produces exactly those digits, choosing the closest when several are
    equally short, as ECMAScript does); only the layout differs: plain
    notation when 1e-6 <= |x| < 1e21, else `d.ddde+N` / `d.ddde-N`.
    `-0.0` prints as `0`. NaN and infinities raise `CanonicalError`.
    """
    try:
        return _format_number(value)
    except _Invalid as invalid:
        raise _error_at("$", invalid) from None


def _format_number(value: int | float) -> str:
    if type(value) is int:
        _check_integer(value)
        return str(value)
    if type(value) is not float:
        raise _Invalid(f"unsupported type {_describe_type(value)} (not a JSON number)")
    if not math.isfinite(value):
        raise _Invalid(f"{value!r} is not a JSON number (NaN and infinities are not allowed)")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent_text = repr(abs(value)).partition("e")
    integer_digits, _, fraction_digits = mantissa.partition(".")
    all_digits = integer_digits + fraction_digits
    # value = 0.<all_digits> * 10**point_position
    point_position = len(integer_digits) + int(exponent_text or 0)
    significant = all_digits.lstrip("0")
    point_position -= len(all_digits) - len(significant)
    digits = significant.rstrip("0")
    digit_count = len(digits)
    if digit_count <= point_position <= 21:
        return sign + digits + "0" * (point_position - digit_count)
    if 0 < point_position <= 21:
        return sign + digits[:point_position] + "." + digits[point_position:]
    if -6 < point_position <= 0:
        return sign + "0." + "0" * -point_position + digits
    exponent = point_position - 1
    exponent_sign = "+" if exponent > 0 else "-"
    fraction = "." + digits[1:] if digit_count > 1 else ""
    return f"{sign}{digits[0]}{fraction}e{exponent_sign}{abs(exponent)}"


def _utf16_sort_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like sequences of UTF-16 code units.
    return key.encode("utf-16-be")


def _serialize(value: object, parts: list[str]) -> None:
    value_type = type(value)
    if value_type is str:
        _check_text(value)
        parts.append(json.dumps(value, ensure_ascii=False))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif value_type is int or value_type is float:
        parts.append(_format_number(value))
    elif value_type is dict:
        for key in value:
            if type(key) is not str:
                raise _Invalid(f"object key {key!r} has type {_describe_type(key)}, not str")
            _check_text(key, is_key=True)
        parts.append("{")
        for position, key in enumerate(sorted(value, key=_utf16_sort_key)):
            if position:
                parts.append(",")
            parts.append(json.dumps(key, ensure_ascii=False))
            parts.append(":")
            try:
                _serialize(value[key], parts)
            except _Invalid as invalid:
                invalid.segments_innermost_first.append(key)
                raise
        parts.append("}")
    elif value_type is list:
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            try:
                _serialize(item, parts)
            except _Invalid as invalid:
                invalid.segments_innermost_first.append(index)
                raise
        parts.append("]")
    else:
        raise _Invalid(f"unsupported type {_describe_type(value)} (JSON values only)")


def canonicalize(value: object) -> bytes:
    """Return the RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    Guarantees: equal JSON values give equal bytes; the bytes parse back to
    the same value with any conforming JSON parser. Strings are escaped per
    RFC 8785 3.2.2.2 (only `"`, `\\` and U+0000..U+001F; `\\b \\t \\n \\f \\r`
    short forms, other controls as lowercase `\\u00xx`); everything else,
    U+007F and U+2028 included, is written as raw UTF-8.

    Raises `CanonicalError`, naming the JSON path, for NaN and infinities,
    integers with |x| >= 2**53, lone surrogates in strings or keys, non-str
    object keys, types other than the exact JSON built-ins, and nesting too
    deep (or circular) for the interpreter's recursion limit.
    """
    parts: list[str] = []
    try:
        _serialize(value, parts)
    except _Invalid as invalid:
        raise _error_at("$", invalid) from None
    except RecursionError:
        raise CanonicalError("$", "nesting is too deep (or the value is circular)") from None
    return "".join(parts).encode("utf-8")


def _check_plain(value: object) -> None:
    value_type = type(value)
    if value_type is str:
        _check_text(value)
    elif value_type is int:
        _check_integer(value)
    elif value_type is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _Invalid(f"object key {key!r} has type {_describe_type(key)}, not str")
            if not key.isascii():
                raise _Invalid(f"object key {json.dumps(key)} is not ASCII")
            try:
                _check_plain(item)
            except _Invalid as invalid:
                invalid.segments_innermost_first.append(key)
                raise
    elif value_type is list:
        for index, item in enumerate(value):
            try:
                _check_plain(item)
            except _Invalid as invalid:
                invalid.segments_innermost_first.append(index)
                raise
    elif value is None or value_type is bool:
        return
    elif value_type is float:
        raise _Invalid(f"numbers must be integers; got the float {value!r}")
    else:
        raise _Invalid(f"unsupported type {_describe_type(value)} (plain JSON values only)")


def check_plain_json(value: object, path: str = "$") -> None:
    """Check that `value` is plain ledger JSON, or raise `CanonicalError` naming where not.

    Plain ledger JSON is: dict with ASCII str keys, list, str without lone
    surrogates, bool, None, and int with |x| < 2**53. Floats are refused
    because amounts and counters are integers and float formatting is where
    JSON implementations disagree. `path` prefixes the reported location, so
    a caller checking a field can pass e.g. `"$.metadata"`.

    Cheap on small dicts (one type test per node, no allocation unless
    something is wrong), so it can run on every entry.
    """
    try:
        _check_plain(value)
    except _Invalid as invalid:
        raise _error_at(path, invalid) from None
    except RecursionError:
        raise CanonicalError(path, "nesting is too deep (or the value is circular)") from None


def encode_plain(value: object) -> bytes:
    """Return the canonical bytes of a value that passed `check_plain_json`, fast.

    For plain values this equals `canonicalize(value)` byte for byte, because:

    * keys are ASCII, and for ASCII strings UTF-16 code-unit order, which
      RFC 8785 sorts by, is the same as code-point order, which
      `sort_keys=True` sorts by;
    * with `ensure_ascii=False` Python escapes exactly `"`, `\\` and
      U+0000..U+001F, using `\\b \\t \\n \\f \\r` and lowercase `\\u00xx`
      for the rest, which is RFC 8785 3.2.2.2; all other characters are
      written raw and encoded as UTF-8 (no lone surrogates, as checked);
    * there are no floats, and integers below 2**53 print the same in
      Python and in ECMAScript; `true`, `false` and `null` are literal.

    Calling it on a value that did not pass `check_plain_json` gives bytes
    that are not guaranteed canonical.
    """
    return _PLAIN_ENCODER.encode(value).encode("utf-8")


_PLAIN_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
"""Built once: `json.dumps` would build an encoder on every call."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 Merkle leaf hash: SHA-256(0x00 || data).

    The 0x00 prefix (0x01 for interior nodes) keeps a leaf from ever being
    passed off as an interior node (second-preimage resistance).
    """
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 Merkle interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()
