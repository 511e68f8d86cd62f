"""Tests for ledger.canonical: RFC 8785 JCS, the plain-JSON fast path, and leaf/node hashes.

Public vectors come from cyberphone/json-canonicalization (see the README
beside them); they are read from shared/vectors next to the repository and
the vector tests skip, with a reason, where that folder is absent.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import (
    EMPTY_ROOT,
    CanonicalError,
    canonicalize,
    check_plain_json,
    encode_plain,
    format_number,
    leaf_hash,
    node_hash,
)

JCS_VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "jcs-rfc8785"
MISSING_VECTORS_REASON = f"public test vectors not found at {JCS_VECTORS}"
ES6_NUMBERS_SHA256 = "be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687"


def jcs_case_params() -> list:
    folder = JCS_VECTORS / "testdata" / "input"
    names = sorted(path.stem for path in folder.glob("*.json")) if folder.is_dir() else []
    if not names:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING_VECTORS_REASON))]
    return names


# --- public vectors -------------------------------------------------------


@pytest.mark.parametrize("name", jcs_case_params())
def test_jcs_vector(name: str) -> None:
    testdata = JCS_VECTORS / "testdata"
    expected = (testdata / "output" / f"{name}.json").read_bytes()
    expected_from_hex = bytes.fromhex((testdata / "outhex" / f"{name}.txt").read_text())
    assert expected == expected_from_hex
    value = json.loads((testdata / "input" / f"{name}.json").read_bytes())
    assert canonicalize(value) == expected
    assert canonicalize(json.loads(expected)) == expected


def test_es6_number_vectors() -> None:
    path = JCS_VECTORS / "es6-numbers-1000.txt"
    if not path.is_file():
        pytest.skip(MISSING_VECTORS_REASON)
    content = path.read_bytes()
    assert hashlib.sha256(content).hexdigest() == ES6_NUMBERS_SHA256
    lines = content.decode("ascii").splitlines()
    assert len(lines) == 1000
    mismatches = []
    for line in lines:
        bits_hex, expected = line.split(",")
        value = struct.unpack(">d", int(bits_hex, 16).to_bytes(8, "big"))[0]
        if format_number(value) != expected or canonicalize(value) != expected.encode():
            mismatches.append((bits_hex, expected, format_number(value)))
    assert mismatches == []


# --- numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (1e30, "1e+30"),
        (1e-27, "1e-27"),
        (333333333.3333333, "333333333.3333333"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (1.5e21, "1.5e+21"),
        (0.000001, "0.000001"),
        (0.0000001, "1e-7"),
        (1.25e-7, "1.25e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2**53 - 1, "9007199254740991"),
        (-(2**53 - 1), "-9007199254740991"),
        (0, "0"),
    ],
)
def test_format_number(value: float, expected: str) -> None:
    assert format_number(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    with pytest.raises(CanonicalError, match="NaN and infinities"):
        format_number(value)
    with pytest.raises(CanonicalError, match=r"^\$\.postings\[1\]\.amount: "):
        canonicalize({"postings": [{"amount": 1}, {"amount": value}]})


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30, pytest.param(10**5000, id="10**5000")])
def test_integers_beyond_double_precision_are_rejected(value: int) -> None:
    with pytest.raises(CanonicalError, match=r"\$\.limits\[0\]: .*2\*\*53"):
        canonicalize({"limits": [value]})


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_number_round_trips(value: float) -> None:
    assert float(format_number(value)) == value


# --- strings and keys -----------------------------------------------------------


def expected_escape(character: str) -> str:
    """RFC 8785 3.2.2.2, written out independently of the json module."""
    short_forms = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    if character in ('"', "\\"):
        return "\\" + character
    if character in short_forms:
        return short_forms[character]
    if ord(character) < 0x20:
        return f"\\u{ord(character):04x}"
    return character


@pytest.mark.parametrize(
    "character",
    [chr(code_point) for code_point in range(0x80)] + ["\u2028", "\u2029", "\uffff", "\U0001f602"],
)
def test_string_escaping(character: str) -> None:
    expected = f'"a{expected_escape(character)}b"'.encode()
    assert canonicalize(f"a{character}b") == expected
    assert encode_plain(f"a{character}b") == expected
    assert canonicalize({f"a{character}b": 0}) == b"{" + expected + b":0}"


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F602 is the surrogate pair D83D DE02, which sorts before U+FB33.
    assert canonicalize({"\ufb33": 1, "\U0001f602": 2, "b": 3, "a": 4, "": 5}) == (
        '{"":5,"a":4,"b":3,"\U0001f602":2,"\ufb33":1}'.encode()
    )


def test_literals_and_bool_versus_int() -> None:
    assert canonicalize([True, 1, False, 0, None]) == b"[true,1,false,0,null]"
    assert canonicalize({"b": [], "a": {}}) == b'{"a":{},"b":[]}'


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ({"entries": [{"memo": "x\ud800"}]}, "$.entries[0].memo", "lone surrogate U+D800"),
        ({"meta": {"\udfff": 1}}, "$.meta", "lone surrogate U+DFFF"),
        ({"meta": {1: "one"}}, "$.meta", "object key 1 has type int, not str"),
        ({"a b": [(1, 2)]}, '$["a b"][0]', "unsupported type tuple"),
        ({"set": {1}}, "$.set", "unsupported type set"),
        ({"price": Decimal("1.5")}, "$.price", "unsupported type Decimal"),
        ({"colour": Colour.RED}, "$.colour", "unsupported type Colour"),
    ],
)
def test_canonicalize_errors_name_the_path(value: object, path: str, problem: str) -> None:
    with pytest.raises(CanonicalError) as raised:
        canonicalize(value)
    assert raised.value.path == path
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"{path}: ")
    assert isinstance(raised.value, ValueError)


def test_circular_value_is_rejected() -> None:
    circular: list = []
    circular.append(circular)
    with pytest.raises(CanonicalError, match="too deep"):
        canonicalize(circular)
    with pytest.raises(CanonicalError, match="too deep"):
        check_plain_json(circular)


# --- hashes -------------------------------------------------------------------


def test_hashes_use_rfc6962_domain_separation() -> None:
    left, right = b"L" * 32, b"R" * 32
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


# --- plain ledger JSON -------------------------------------------------------------

text_characters = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(max_codepoint=0x7F),
    st.characters(min_codepoint=0x10000, codec="utf-8"),
)
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53 - 1), 2**53 - 1),
    st.text(text_characters),
)
ascii_keys = st.text(st.characters(max_codepoint=0x7F))
plain_values = st.recursive(
    plain_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(ascii_keys, children, max_size=5)
    ),
    max_leaves=30,
)


@given(plain_values)
def test_encode_plain_equals_canonicalize(value: object) -> None:
    check_plain_json(value)
    encoded = encode_plain(value)
    assert encoded == canonicalize(value)
    assert json.loads(encoded) == value


json_values = st.recursive(
    plain_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(text_characters), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_canonicalize_is_stable_under_reparsing(value: object) -> None:
    # JCS numbers are IEEE 754 doubles, so reparse them as floats: the float
    # 6.677911612493641e+16 prints as "66779116124936410", which Python would
    # otherwise read back as an int that is not exactly that double.
    encoded = canonicalize(value)
    reparsed = json.loads(encoded, parse_int=float)
    assert reparsed == value
    assert canonicalize(reparsed) == encoded


identifier_keys = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
path_segments = st.lists(st.one_of(identifier_keys, st.just(0)), max_size=4)


def nest(value: object, segments: list[str | int]) -> tuple[object, str]:
    """Wrap `value` in dicts/lists along `segments`; return it with its JSON path."""
    path = "$" + "".join(f"[{segment}]" if segment == 0 else f".{segment}" for segment in segments)
    for segment in reversed(segments):
        value = [value] if segment == 0 else {segment: value}
    return value, path


@settings(max_examples=50)
@given(path_segments, st.floats())
def test_check_plain_json_rejects_floats(segments: list[str | int], number: float) -> None:
    value, path = nest(number, segments)
    with pytest.raises(CanonicalError, match="numbers must be integers") as raised:
        check_plain_json(value)
    assert raised.value.path == path


@settings(max_examples=50)
@given(path_segments, st.text(st.characters(min_codepoint=0x80, codec="utf-8"), min_size=1))
def test_check_plain_json_rejects_non_ascii_keys(segments: list[str | int], key: str) -> None:
    value, path = nest({key: 1}, segments)
    with pytest.raises(CanonicalError, match="is not ASCII") as raised:
        check_plain_json(value)
    assert raised.value.path == path


@settings(max_examples=50)
@given(path_segments, st.integers(min_value=2**53) | st.integers(max_value=-(2**53)))
def test_check_plain_json_rejects_big_integers(segments: list[str | int], number: int) -> None:
    value, path = nest(number, segments)
    with pytest.raises(CanonicalError, match=r"2\*\*53") as raised:
        check_plain_json(value)
    assert raised.value.path == path


def test_check_plain_json_path_prefix_and_messages() -> None:
    with pytest.raises(CanonicalError) as raised:
        check_plain_json({"tags": ["a", 1.0]}, path="$.metadata")
    assert str(raised.value) == "$.metadata.tags[1]: numbers must be integers; got the float 1.0"
    with pytest.raises(CanonicalError, match=r"^\$: object key None has type NoneType"):
        check_plain_json({None: 1})
    with pytest.raises(CanonicalError, match=r"^\$\.s: string contains a lone surrogate"):
        check_plain_json({"s": "\ud83d"})
    with pytest.raises(CanonicalError, match=r"^\$\.x: unsupported type Colour"):
        check_plain_json({"x": Colour.RED})
    check_plain_json({"amount": 2**53 - 1, "ok": True, "note": None, "tags": ["\x00\U0001f602"]})
