"""Appending, batches, reversals, idempotency and refusals, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ledger import errors
from ledger.accounts import ISSUANCE, PENALTY
from ledger.canonical import leaf_hash
from ledger.chain import (
    MAX_POINTS,
    Draft,
    Posting,
    append,
    append_batch,
    get_entry,
    head,
    reverse,
)
from ledger.merkle import merkle_root
from ledger.models import Entry as EntryRow
from ledger.models import Posting as PostingRow
from ledger.programmes import create_programme, get_programme
from ledger.statements import balance_of, balances
from ledger.verify import verify_chain
from tests.conftest import make_village

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def award(village, member_index: int, points: int, key: str | None = None, **extra):
    return append(
        village.engine,
        village.code,
        kind="award",
        postings=[Posting(village.account(member_index), points), Posting(ISSUANCE, -points)],
        actor="organiser:test",
        occurred_at=WHEN,
        memo="attended the meeting",
        idempotency_key=key,
        **extra,
    )


def count_rows(engine, programme_code: str) -> tuple[int, int]:
    programme = get_programme(engine, programme_code)
    with engine.connect() as connection:
        entries = connection.execute(
            select(func.count()).where(EntryRow.programme_id == programme.id)
        ).scalar_one()
        postings = connection.execute(
            select(func.count()).where(PostingRow.programme_id == programme.id)
        ).scalar_one()
    return entries, postings


def test_first_entries_link_into_a_chain_and_a_merkle_tree(village):
    first = award(village, 0, 5).entry
    second = award(village, 1, 7).entry

    assert (first.seq, second.seq) == (0, 1)
    assert first.prev_hash is None
    assert second.prev_hash == first.hash
    assert first.hash == leaf_hash(first.canonical_bytes())
    tip = head(village.engine, village.code)
    assert tip.size == 2
    assert tip.head_hash == second.hash
    assert tip.root == merkle_root([first.hash, second.hash])


def test_balances_and_scores_follow_awards_and_deductions(village):
    award(village, 0, 10)
    append(
        village.engine,
        village.code,
        kind="deduction",
        postings=[Posting(village.account(0), -3), Posting(PENALTY, 3)],
        actor="organiser:test",
        memo="rubbish not sorted",
    )
    append(  # spending moves the balance, never the score
        village.engine,
        village.code,
        kind="voucher_issue",
        postings=[Posting(village.account(0), -4), Posting(village.account(1), 4)],
        actor="member:m0",
    )
    member = balance_of(village.engine, village.code, village.account(0))
    assert (member.balance_points, member.score_points) == (3, 7)
    other = balance_of(village.engine, village.code, village.account(1))
    assert (other.balance_points, other.score_points) == (4, 0)
    assert sum(row.balance_points for row in balances(village.engine, village.code)) == 0
    assert verify_chain(village.engine, village.code).ok


def test_batch_posts_in_order_in_one_transaction(village):
    drafts = [
        Draft("award", [Posting(village.account(index % 4), 2), Posting(ISSUANCE, -2)],
              "organiser:test", WHEN, idempotency_key=f"sheet-1-line-{index}")
        for index in range(50)
    ]
    results = append_batch(village.engine, village.code, drafts)

    assert [result.entry.seq for result in results] == list(range(50))
    assert all(result.created for result in results)
    assert count_rows(village.engine, village.code) == (50, 100)
    assert verify_chain(village.engine, village.code).ok


def test_a_bad_draft_anywhere_in_a_batch_writes_nothing(village):
    drafts = [
        Draft("award", [Posting(village.account(0), 2), Posting(ISSUANCE, -2)], "organiser:test"),
        Draft("award", [Posting("member:nobody", 2), Posting(ISSUANCE, -2)], "organiser:test"),
    ]
    with pytest.raises(errors.UnknownAccount) as refused:
        append_batch(village.engine, village.code, drafts)
    assert refused.value.details["account"] == "member:nobody"
    assert count_rows(village.engine, village.code) == (0, 0)
    assert head(village.engine, village.code).size == 0


def test_same_key_same_content_returns_the_original_and_posts_nothing(village):
    first = award(village, 0, 5, key="award-42")
    again = award(village, 0, 5, key="award-42")

    assert first.created and not again.created
    assert again.entry == first.entry
    assert count_rows(village.engine, village.code) == (1, 2)
    assert balance_of(village.engine, village.code, village.account(0)).balance_points == 5


def test_same_key_other_content_is_a_conflict(village):
    award(village, 0, 5, key="award-43")
    with pytest.raises(errors.IdempotencyConflict) as refused:
        award(village, 0, 6, key="award-43")
    assert refused.value.code == "idempotency_conflict"
    assert refused.value.details["seq"] == 0
    assert count_rows(village.engine, village.code) == (1, 2)


def test_a_batch_retried_after_success_posts_nothing_more(village):
    drafts = [
        Draft("award", [Posting(village.account(0), 1), Posting(ISSUANCE, -1)],
              "organiser:test", WHEN, idempotency_key=f"line-{index}")
        for index in range(5)
    ]
    append_batch(village.engine, village.code, drafts[:3])
    results = append_batch(village.engine, village.code, drafts)

    assert [result.created for result in results] == [False, False, False, True, True]
    assert [result.entry.seq for result in results] == [0, 1, 2, 3, 4]
    assert count_rows(village.engine, village.code) == (5, 10)


def test_reversal_negates_the_postings_and_names_what_it_reverses(village):
    original = award(village, 2, 9).entry
    reversal = reverse(village.engine, village.code, original.seq, actor="organiser:test",
                       memo="entered by mistake", idempotency_key="rev-1").entry

    assert reversal.kind == "reversal"
    assert reversal.reverses == original.seq
    assert [(p.account, p.points) for p in reversal.postings] == [
        (village.account(2), -9), (ISSUANCE, 9)
    ]
    member = balance_of(village.engine, village.code, village.account(2))
    assert (member.balance_points, member.score_points) == (0, 0)
    assert verify_chain(village.engine, village.code).ok


def test_an_entry_is_reversed_once_and_a_reversal_not_at_all(village):
    original = award(village, 0, 4).entry
    reversal = reverse(village.engine, village.code, original.seq, actor="organiser:test",
                       memo="mistake", idempotency_key="rev-a").entry
    again = reverse(village.engine, village.code, original.seq, actor="organiser:test",
                    memo="mistake", idempotency_key="rev-a")
    assert not again.created and again.entry == reversal

    with pytest.raises(errors.AlreadyReversed) as refused:
        reverse(village.engine, village.code, original.seq, actor="organiser:other",
                memo="mistake again")
    assert refused.value.details == {"seq": original.seq, "reversed_by": reversal.seq}
    with pytest.raises(errors.NotReversible):
        reverse(village.engine, village.code, reversal.seq, actor="organiser:test", memo="undo")
    with pytest.raises(errors.UnknownEntry):
        reverse(village.engine, village.code, 999, actor="organiser:test", memo="nothing")


def test_admin_entries_may_carry_no_postings(village):
    entry = append(village.engine, village.code, kind="admin", postings=[],
                   actor="admin:root", memo="rule 会议我能到 v2 in force",
                   metadata={"rule": "meeting", "version": 2}).entry
    assert entry.postings == ()
    assert get_entry(village.engine, village.code, entry.seq) == entry


def test_get_entry_round_trips_every_field(village):
    appended = award(village, 1, 3, key="round-trip", evidence="sha256:" + "ab" * 32,
                     metadata={"sheet": "2026-11-20", "line": 4, "names": ["张伟", "王芳"]}).entry
    assert get_entry(village.engine, village.code, appended.seq) == appended
    assert appended.occurred_at == "2026-11-20T09:30:00.000000Z"


@pytest.mark.parametrize(
    ("postings", "error", "field"),
    [
        ([("A", 5), (ISSUANCE, -4)], errors.UnbalancedPostings, "postings"),
        ([("A", 5)], errors.UnbalancedPostings, "postings"),
        ([("A", 2.5), (ISSUANCE, -2.5)], errors.InvalidAmount, "postings[0].points"),
        ([("A", True), (ISSUANCE, -1)], errors.InvalidAmount, "postings[0].points"),
        ([("A", "5"), (ISSUANCE, -5)], errors.InvalidAmount, "postings[0].points"),
        ([("A", 0), (ISSUANCE, 0)], errors.InvalidAmount, "postings[0].points"),
        ([("A", MAX_POINTS + 1), (ISSUANCE, -MAX_POINTS - 1)], errors.InvalidAmount,
         "postings[0].points"),
        ([("A", 1), ("A", -1)], errors.InvalidEntry, "postings[1].account"),
    ],
)
def test_bad_postings_are_refused_with_the_field_named(village, postings, error, field):
    resolved = [Posting(village.account(0) if account == "A" else account, points)
                for account, points in postings]
    with pytest.raises(error) as refused:
        append(village.engine, village.code, kind="award", postings=resolved,
               actor="organiser:test")
    assert refused.value.details["field"] == field
    assert count_rows(village.engine, village.code) == (0, 0)


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"kind": "gift"}, errors.UnknownKind, "kind"),
        ({"kind": "reversal"}, errors.InvalidEntry, "kind"),
        ({"actor": " "}, errors.InvalidEntry, "actor"),
        ({"memo": "x" * 2001}, errors.InvalidEntry, "memo"),
        ({"occurred_at": datetime(2026, 11, 20, 9, 30)}, errors.InvalidEntry, "occurred_at"),
        ({"occurred_at": datetime.now(UTC) + timedelta(days=1)}, errors.InvalidEntry,
         "occurred_at"),
        ({"metadata": {"score": 1.5}}, errors.InvalidEntry, "metadata"),
        ({"metadata": {"名字": "x"}}, errors.InvalidEntry, "metadata"),
        ({"idempotency_key": ""}, errors.InvalidEntry, "idempotency_key"),
        ({"idempotency_key": "键"}, errors.InvalidEntry, "idempotency_key"),
        ({"memo": "\ud800"}, errors.InvalidEntry, "memo"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(village, change, error, field):
    fields = {
        "kind": "award",
        "postings": [Posting(village.account(0), 1), Posting(ISSUANCE, -1)],
        "actor": "organiser:test",
    } | change
    with pytest.raises(error) as refused:
        append(village.engine, village.code, **fields)
    assert refused.value.details["field"] == field
    assert count_rows(village.engine, village.code) == (0, 0)


def test_unknown_programme_and_account_are_named(engine, village):
    with pytest.raises(errors.UnknownProgramme) as refused:
        append(engine, "no-such-programme", kind="award",
               postings=[Posting("issuance", -1), Posting("member:x", 1)], actor="a")
    assert refused.value.details["programme"] == "no-such-programme"

    other = make_village(engine)  # an account of another programme is unknown here
    with pytest.raises(errors.UnknownAccount):
        append(engine, village.code, kind="award", actor="a",
               postings=[Posting(ISSUANCE, -1), Posting(f"member:{other.members[0]}x", 1)])


def test_programmes_have_independent_chains(engine):
    first, second = make_village(engine), make_village(engine)
    award(first, 0, 1)
    award(first, 0, 1)
    assert award(second, 0, 1).entry.seq == 0
    assert head(engine, first.code).size == 2


def test_programme_codes_and_time_zones_are_checked(engine):
    with pytest.raises(errors.InvalidEntry):
        create_programme(engine, "Bad Code", "x")
    with pytest.raises(errors.InvalidEntry) as refused:
        create_programme(engine, "tz-check", "x", time_zone="Mars/Olympus")
    assert refused.value.details["field"] == "time_zone"
    create_programme(engine, "tz-ok", "x")
    with pytest.raises(errors.AlreadyExists):
        create_programme(engine, "tz-ok", "x")


def test_reserved_idempotency_keys_are_refused_for_clients(village):
    original = award(village, 0, 4).entry
    with pytest.raises(errors.InvalidEntry) as refused:
        reverse(village.engine, village.code, original.seq, actor="organiser:test",
                memo="mistake", idempotency_key="claim:1")
    assert refused.value.details["field"] == "idempotency_key"
    assert head(village.engine, village.code).size == 1
