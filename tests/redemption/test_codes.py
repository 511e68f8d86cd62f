"""Short codes: every single typo and neighbour swap is caught; look-alikes are forgiven.

The pure tests need no database; the last ones redeem by a typed code on both.
"""

from __future__ import annotations

import random

import pytest

from redemption import codes
from redemption.redemptions import check, redeem
from redemption.vouchers import issue_voucher
from tests.redemption.conftest import CASHIER, ORGANISER

SAMPLE_SIZE = 300


def sample_codes() -> list[str]:
    randomness = random.Random(20261120)
    sample = []
    for _ in range(SAMPLE_SIZE):
        data = "".join(randomness.choice(codes.ALPHABET) for _ in range(codes.DATA_CHARS))
        sample.append(data + codes.check_character(data))
    return sample


def test_a_new_code_is_eleven_characters_shown_in_three_groups_and_parses_back():
    code = codes.new_short_code()
    shown = codes.display(code)
    assert len(code) == 11 and shown.count("-") == 2
    assert [len(group) for group in shown.split("-")] == [4, 4, 3]
    assert codes.parse(shown) == code
    assert codes.parse(shown.lower()) == code
    assert codes.parse(" " + shown.replace("-", " ") + " ") == code


def test_the_check_character_is_crockfords_value_modulo_37():
    assert codes.check_character("0000000000") == "0"
    assert codes.check_character("000000000Z") == "Z"  # 31
    assert codes.check_character("0000000010") == "*"  # 32
    assert codes.check_character("0000000011") == "~"  # 33
    assert codes.check_character("0000000014") == "U"  # 36
    assert codes.check_character("0000000015") == "0"  # 37
    assert codes.check_character("000000001Z") == "T"  # 63 = 37 + 26


def test_every_single_character_substitution_is_detected():
    undetected = []
    tried = 0
    for code in sample_codes():
        for position in range(codes.CODE_CHARS):
            alphabet = codes.CHECK_ALPHABET if position == codes.DATA_CHARS else codes.ALPHABET
            for symbol in alphabet:
                if symbol == code[position]:
                    continue
                typo = code[:position] + symbol + code[position + 1:]
                tried += 1
                try:
                    codes.parse(typo)
                except codes.ShortCodeError:
                    continue
                undetected.append(typo)
    assert tried == SAMPLE_SIZE * (10 * 31 + 36)
    assert undetected == []


def test_every_swap_of_two_different_neighbours_is_detected():
    undetected = []
    for code in sample_codes():
        for position in range(codes.CODE_CHARS - 1):
            first, second = code[position], code[position + 1]
            if first == second:
                continue
            swapped = code[:position] + second + first + code[position + 2:]
            try:
                codes.parse(swapped)
            except codes.ShortCodeError:
                continue
            undetected.append(swapped)
    assert undetected == []


def test_look_alike_letters_read_as_the_digits_they_resemble():
    data = "0123456789"
    code = data + codes.check_character(data)
    typed = "o" + "I" + code[2:]
    assert codes.parse(typed) == code
    assert codes.parse("O" + "l" + code[2:]) == code


@pytest.mark.parametrize("text,reason", [
    ("ABCD-EFGH-JK", "11 characters"),
    ("ABCD-EFGH-JKMN", "11 characters"),
    ("ABCD-EFGH-UK0", "not used"),
    ("ABCD-EFGH-JK!", "not a check character"),
])
def test_malformed_codes_say_what_is_wrong(text, reason):
    with pytest.raises(codes.ShortCodeError, match=reason):
        codes.parse(text)


def test_a_typed_code_checks_and_redeems_and_a_typo_is_refused_as_forged(market):
    voucher = issue_voucher(market.engine, market.code, market.member(0), actor=ORGANISER,
                            points=30)
    shown = voucher.display_code
    wrong = shown[:2] + ("1" if shown[2] != "1" else "2") + shown[3:]

    assert check(market.engine, market.code, "rice", shown.lower()).valid
    refused = check(market.engine, market.code, "rice", wrong)
    assert (refused.valid, refused.refusal, refused.voucher_id) == (False, "forged", None)
    assert "check character" in refused.message

    redeemed = redeem(market.engine, market.code, "rice", shown.replace("-", ""), actor=CASHIER)
    assert (redeemed.voucher_id, redeemed.value_points) == (voucher.id, 30)
    assert market.balance("shop:rice") == 30


def test_a_well_formed_code_that_names_no_voucher_is_unknown(market):
    data = "ZZZZZZZZZZ"
    result = check(market.engine, market.code, "rice", data + codes.check_character(data))
    assert (result.valid, result.refusal) == (False, "unknown_voucher")
