"""Reversing awards and deductions (`ledger.awards.reverse_award`): who may, and what it undoes.

The tree is the one in `tests/ledger/conftest.py`: organisers on town, east
and west; reviewers on east and west. Every refusal is checked to have
written nothing (the chain keeps its size).
"""

from __future__ import annotations

import pytest

from ledger import errors
from ledger.accounts import ISSUANCE
from ledger.awards import NotInScope, reverse_award
from ledger.chain import Posting, append
from ledger.organisation import grant_role
from tests.ledger.conftest import (
    EAST_ORGANISER,
    EAST_REVIEWER,
    RULE_WRITER,
    TOWN_ORGANISER,
    WEST_REVIEWER,
)


@pytest.fixture
def sweep(town):
    """A town whose members have been awarded under 'sweep' (5 points) and deducted under
    'litter' (2 points)."""
    town.rule("sweep", points=5)
    town.rule("litter", points=2, sign="deduction")
    return town


def test_a_reviewer_of_the_members_village_reverses_an_award(sweep):
    town = sweep
    award = town.award("e0", "sweep").entry
    assert town.points("e0") == (5, 5)

    appended = reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER,
                             memo="entered for the wrong member")

    reversal = appended.entry
    assert appended.created
    assert (reversal.kind, reversal.reverses, reversal.actor) == ("reversal", award.seq,
                                                                   EAST_REVIEWER)
    assert reversal.memo == "entered for the wrong member"
    assert reversal.postings == (Posting("member:e0", -5), Posting(ISSUANCE, 5))
    assert town.points("e0") == (0, 0)
    town.assert_verifies()


def test_reversing_a_deduction_gives_back_balance_and_score(sweep):
    town = sweep
    town.award("e0", "sweep")
    deduction = town.award("e0", "litter").entry
    assert town.points("e0") == (3, 3)

    reverse_award(town.engine, town.code, deduction.seq, actor=EAST_REVIEWER,
                  memo="the litter was not theirs")

    assert town.points("e0") == (5, 5)
    town.assert_verifies()


def test_an_admin_on_a_subtree_holding_the_member_may_reverse(sweep):
    town = sweep
    grant_role(town.engine, town.code, "admin:town", "admin", "town")
    award = town.award("w0", "sweep", actor=TOWN_ORGANISER).entry

    reversal = reverse_award(town.engine, town.code, award.seq, actor="admin:town",
                             memo="duplicate").entry

    assert reversal.reverses == award.seq
    assert town.points("w0") == (0, 0)


@pytest.mark.parametrize("actor", [EAST_ORGANISER, TOWN_ORGANISER, WEST_REVIEWER, "nobody"])
def test_who_lacks_reviewer_or_admin_over_the_member_is_refused(sweep, actor):
    town = sweep
    award = town.award("e0", "sweep").entry
    size = town.chain_size()

    with pytest.raises(NotInScope) as refused:
        reverse_award(town.engine, town.code, award.seq, actor=actor, memo="mistake")

    assert refused.value.code == "not_in_scope"
    assert refused.value.details["seq"] == award.seq
    assert (town.chain_size(), town.points("e0")) == (size, (5, 5))


def test_an_entry_posting_to_two_villages_needs_the_role_over_both(sweep):
    town = sweep
    both = append(town.engine, town.code, kind="award", actor=RULE_WRITER, memo="joint prize",
                  postings=[Posting("member:e0", 5), Posting("member:w0", 5),
                            Posting(ISSUANCE, -10)]).entry
    size = town.chain_size()

    with pytest.raises(NotInScope) as refused:
        reverse_award(town.engine, town.code, both.seq, actor=EAST_REVIEWER, memo="mistake")
    assert refused.value.details["members"] == ["w0"]
    assert town.chain_size() == size

    grant_role(town.engine, town.code, EAST_REVIEWER, "admin", "west")
    reversal = reverse_award(town.engine, town.code, both.seq, actor=EAST_REVIEWER,
                             memo="mistake").entry
    assert reversal.reverses == both.seq
    assert (town.points("e0"), town.points("w0")) == ((0, 0), (0, 0))


@pytest.mark.parametrize("kind", ["admin", "reversal", "voucher_issue"])
def test_only_awards_and_deductions_are_reversed_here(sweep, kind):
    town = sweep
    award = town.award("e0", "sweep").entry
    if kind == "admin":
        target = append(town.engine, town.code, kind="admin", postings=[], actor=RULE_WRITER,
                        memo="a note").entry
    elif kind == "reversal":
        target = reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER,
                               memo="mistake").entry
    else:
        target = append(town.engine, town.code, kind="voucher_issue", actor=RULE_WRITER,
                        postings=[Posting("member:e0", -5), Posting(ISSUANCE, 5)]).entry
    size = town.chain_size()

    with pytest.raises(errors.NotReversible) as refused:
        reverse_award(town.engine, town.code, target.seq, actor=RULE_WRITER, memo="undo")

    assert refused.value.details == {"seq": target.seq, "kind": kind}
    assert town.chain_size() == size


def test_an_entry_is_reversed_once_and_a_retry_with_the_key_returns_the_first(sweep):
    town = sweep
    award = town.award("e0", "sweep").entry
    first = reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER,
                          memo="mistake", idempotency_key="undo-1")

    retry = reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER,
                          memo="mistake", idempotency_key="undo-1")
    assert (retry.created, retry.entry) == (False, first.entry)

    with pytest.raises(errors.IdempotencyConflict):
        reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER,
                      memo="another reason", idempotency_key="undo-1")
    with pytest.raises(errors.AlreadyReversed) as twice:
        reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER, memo="mistake")
    assert twice.value.details == {"seq": award.seq, "reversed_by": first.entry.seq}
    assert town.chain_size() == first.entry.seq + 1
    assert town.points("e0") == (0, 0)


@pytest.mark.parametrize("memo, key, field", [("", None, "memo"), ("   ", None, "memo"),
                                              ("mistake", "claim:7", "idempotency_key")])
def test_a_reversal_says_why_and_may_not_take_a_reserved_key(sweep, memo, key, field):
    town = sweep
    award = town.award("e0", "sweep").entry
    size = town.chain_size()

    with pytest.raises(errors.InvalidEntry) as refused:
        reverse_award(town.engine, town.code, award.seq, actor=EAST_REVIEWER, memo=memo,
                      idempotency_key=key)

    assert refused.value.details["field"] == field
    assert town.chain_size() == size


def test_an_unknown_entry_is_refused(sweep):
    town = sweep
    size = town.chain_size()
    with pytest.raises(errors.UnknownEntry):
        reverse_award(town.engine, town.code, 999, actor=EAST_REVIEWER, memo="nothing there")
    assert town.chain_size() == size
