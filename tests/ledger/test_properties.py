"""Property tests of the chain: the ledger against a plain model, and draft validation.

The state machine drives one programme's chain with awards, deductions,
transfers, admin entries, batches, reversals and retries, drawing
idempotency keys from a small pool so that replays and conflicts come up
often. A model of a few dictionaries says what each call must return or
raise; after every step the ledger's balances, scores and head must equal
the model's, and the whole chain must verify. A refused call must leave the
ledger exactly as the model (which did not move) says.

The validation properties feed `append` postings of every wrong shape
(floats, bools, zeros, numbers past 2**53, sums that are not zero, repeated
accounts) and check that exactly the ones a plain reading of the rules calls
invalid are refused, with the error and field the rules name, and that a
refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ledger import errors
from ledger.accounts import ISSUANCE, PENALTY, SYSTEM_ACCOUNTS
from ledger.chain import (
    MAX_POINTS,
    Appended,
    Draft,
    Entry,
    Posting,
    append,
    append_batch,
    head,
    reverse,
)
from ledger.models import Posting as PostingRow
from ledger.programmes import get_programme
from ledger.statements import balances
from ledger.verify import verify_chain
from tests.conftest import make_village

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ACTOR = "organiser:model"
MEMBER_COUNT = 3
ACCOUNT_COUNT = MEMBER_COUNT + len(SYSTEM_ACCOUNTS)
KEY_POOL = ("key-a", "key-b", "key-c", "key-d", "key-e")
"""Few enough keys that retries and conflicts happen in most runs."""
MEMOS = {
    "award": "attended the meeting",
    "deduction": "rubbish not sorted",
    "voucher_issue": "voucher for rice",
    "admin": "rule 会议我能到 v2 in force",
    "reversal": "entered by mistake",
}
MODEL_SCORE_KINDS = frozenset({"award", "deduction"})
"""The model's own statement of the rule: only these kinds (and their reversals) score."""
MODEL_NOT_REVERSIBLE = frozenset({"reversal", "admin", "voucher_issue"})
"""Voucher entries are undone by their own services (cancel, expiry), never by reverse()."""
VERIFY_EVERY_CHECKS = 5
"""verify_chain reads the whole chain; every fifth step and at teardown is enough."""

member_indexes = st.integers(0, MEMBER_COUNT - 1)
point_amounts = st.integers(1, 1000)
keys = st.none() | st.sampled_from(KEY_POOL)
batch_keys = st.one_of(st.none(), st.none(), st.sampled_from(KEY_POOL))
"""Keys in batches are sparser: with one per line most batches would conflict."""


@dataclass(frozen=True)
class Request:
    """What a caller sends, without the idempotency key: equal requests replay."""

    kind: str
    postings: tuple[tuple[str, int], ...]
    memo: str
    reverses: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    request: Request
    key: str | None
    recorded: Entry
    """The entry as the ledger returned it when created; replays must return it again."""


class LedgerModelMachine(RuleBasedStateMachine):
    """One programme's chain next to a model of it; `engine` is set per backend by the test."""

    engine: Engine

    def __init__(self) -> None:
        super().__init__()
        self.village = make_village(self.engine, members=MEMBER_COUNT)
        self.members = [self.village.account(index) for index in range(MEMBER_COUNT)]
        self.accounts = self.members + list(SYSTEM_ACCOUNTS)
        self.entries: list[ModelEntry] = []
        self.requests_by_key: dict[str, tuple[Request, int]] = {}
        self.reversed_by: dict[int, int] = {}
        self.balance_points = {account: 0 for account in self.accounts}
        self.score_points = {account: 0 for account in self.accounts}
        self.checks = 0

    # -- requests ------------------------------------------------------------------

    def scored_request(self, kind: str, member: int, amount: int) -> Request:
        account = self.members[member]
        if kind == "award":
            return Request(kind, ((account, amount), (ISSUANCE, -amount)), MEMOS[kind])
        return Request(kind, ((account, -amount), (PENALTY, amount)), MEMOS[kind])

    def transfer_request(self, member: int, offset: int, amount: int) -> Request:
        """A voucher_issue moving points from a member to any other account."""
        other = self.accounts[(member + offset) % ACCOUNT_COUNT]
        return Request("voucher_issue", ((self.members[member], -amount), (other, amount)),
                       MEMOS["voucher_issue"])

    def draft(self, request: Request, key: str | None) -> Draft:
        postings = [Posting(account, amount) for account, amount in request.postings]
        return Draft(request.kind, postings, ACTOR, WHEN, memo=request.memo, idempotency_key=key)

    def send(self, request: Request, key: str | None) -> Appended:
        if request.kind == "reversal":
            return reverse(self.engine, self.village.code, request.reverses, actor=ACTOR,
                           memo=request.memo, idempotency_key=key)
        return append(self.engine, self.village.code, kind=request.kind,
                      postings=self.draft(request, key).postings, actor=ACTOR, occurred_at=WHEN,
                      memo=request.memo, idempotency_key=key)

    # -- the model -----------------------------------------------------------------

    def expected_seqs(
        self, lines: list[tuple[Request, str | None]]
    ) -> type[errors.LedgerError] | list[int]:
        """The seq each line must come back with, or the error the whole call must raise.

        A key used in the chain replays its entry when the content is equal and
        conflicts otherwise; a key repeated inside one call with other content
        conflicts, and with equal content (not yet in the chain) is refused.
        """
        first_request_of_key: dict[str, Request] = {}
        for request, key in lines:
            if key is None:
                continue
            if first_request_of_key.setdefault(key, request) != request:
                return errors.IdempotencyConflict
        seqs: list[int] = []
        next_seq = len(self.entries)
        keys_in_call: set[str] = set()
        for request, key in lines:
            if key is not None and key in self.requests_by_key:
                original, seq = self.requests_by_key[key]
                if original != request:
                    return errors.IdempotencyConflict
                seqs.append(seq)
            elif key is not None and key in keys_in_call:
                return errors.InvalidEntry
            else:
                seqs.append(next_seq)
                next_seq += 1
            if key is not None:
                keys_in_call.add(key)
        return seqs

    def record(self, request: Request, key: str | None, entry: Entry) -> None:
        """Check a new entry against the request and the chain so far, then apply it."""
        seq = len(self.entries)
        assert entry.seq == seq
        assert entry.prev_hash == (self.entries[-1].recorded.hash if self.entries else None)
        assert entry.kind == request.kind
        assert tuple((posting.account, posting.points) for posting in entry.postings) == (
            request.postings
        )
        assert entry.memo == request.memo
        assert entry.reverses == request.reverses
        assert entry.idempotency_key == key
        moves_score = request.kind in MODEL_SCORE_KINDS or (
            request.reverses is not None
            and self.entries[request.reverses].request.kind in MODEL_SCORE_KINDS
        )
        for account, amount in request.postings:
            self.balance_points[account] += amount
            if moves_score and account in self.members:
                self.score_points[account] += amount
        self.entries.append(ModelEntry(request, key, entry))
        if key is not None:
            self.requests_by_key[key] = (request, seq)
        if request.reverses is not None:
            self.reversed_by[request.reverses] = seq

    def check_results(
        self, lines: list[tuple[Request, str | None]], seqs: list[int], results: list[Appended]
    ) -> None:
        existing = len(self.entries)
        assert [result.entry.seq for result in results] == seqs
        for (request, key), seq, result in zip(lines, seqs, results, strict=True):
            if seq < existing:
                assert not result.created
                assert result.entry == self.entries[seq].recorded
            else:
                assert result.created
                self.record(request, key, result.entry)

    def post(self, lines: list[tuple[Request, str | None]], as_batch: bool) -> None:
        self.settle("batch" if as_batch else "append", lines, self.expected_seqs(lines),
                    lambda: self.call(lines, as_batch))

    def settle(
        self,
        label: str,
        lines: list[tuple[Request, str | None]],
        expected: type[errors.LedgerError] | list[int],
        call: Callable[[], list[Appended]],
    ) -> errors.LedgerError | None:
        """Make the call; it must raise exactly `expected`, or return entries at those seqs."""
        if isinstance(expected, type):
            event(f"{label}: {expected.__name__}")
            with pytest.raises(errors.LedgerError) as refused:
                call()
            assert type(refused.value) is expected, repr(refused.value)
            return refused.value
        replayed = any(seq < len(self.entries) for seq in expected)
        event(f"{label}: {'some replayed' if replayed else 'all new'}")
        self.check_results(lines, expected, call())
        return None

    def call(self, lines: list[tuple[Request, str | None]], as_batch: bool) -> list[Appended]:
        if as_batch:
            drafts = [self.draft(request, key) for request, key in lines]
            return append_batch(self.engine, self.village.code, drafts)
        [(request, key)] = lines
        return [self.send(request, key)]

    # -- rules ---------------------------------------------------------------------

    @rule(kind=st.sampled_from(["award", "deduction"]), member=member_indexes,
          amount=point_amounts, key=keys)
    def post_award_or_deduction(self, kind: str, member: int, amount: int, key: str | None):
        self.post([(self.scored_request(kind, member, amount), key)], as_batch=False)

    @rule(member=member_indexes, offset=st.integers(1, ACCOUNT_COUNT - 1),
          amount=point_amounts, key=keys)
    def post_transfer(self, member: int, offset: int, amount: int, key: str | None):
        self.post([(self.transfer_request(member, offset, amount), key)], as_batch=False)

    @rule(key=keys)
    def post_admin_entry(self, key: str | None):
        self.post([(Request("admin", (), MEMOS["admin"]), key)], as_batch=False)

    @rule(
        lines=st.lists(
            st.tuples(
                st.sampled_from(["award", "deduction", "voucher_issue"]),
                member_indexes,
                st.integers(1, ACCOUNT_COUNT - 1),
                point_amounts,
                batch_keys,
            ),
            min_size=2,
            max_size=5,
        ),
        data=st.data(),
    )
    def post_batch(self, lines: list[tuple[str, int, int, int, str | None]], data: st.DataObject):
        requests = [
            (
                self.transfer_request(member, offset, amount)
                if kind == "voucher_issue"
                else self.scored_request(kind, member, amount),
                key,
            )
            for kind, member, offset, amount, key in lines
        ]
        retryable = sorted(  # a batch cannot carry a reversal: reverse() names what it undoes
            key for key, (request, _) in self.requests_by_key.items() if request.kind != "reversal"
        )
        if retryable and data.draw(st.booleans(), label="retry one inside"):
            key = data.draw(st.sampled_from(retryable), label="retried key")
            position = data.draw(st.integers(0, len(requests)), label="retried at")
            requests.insert(position, (self.requests_by_key[key][0], key))
        if data.draw(st.booleans(), label="repeat a line"):
            requests.append(requests[data.draw(st.integers(0, len(requests) - 1))])
        self.post(requests, as_batch=True)

    @rule(data=st.data(), key=keys)
    def reverse_an_entry(self, data: st.DataObject, key: str | None):
        if self.reversed_by and data.draw(st.booleans(), label="one reversed before"):
            seq = data.draw(st.sampled_from(sorted(self.reversed_by)), label="seq")
        else:
            seq = data.draw(st.integers(0, len(self.entries)), label="seq")
        if seq == len(self.entries):
            event("reverse: UnknownEntry")
            with pytest.raises(errors.UnknownEntry):
                reverse(self.engine, self.village.code, seq, actor=ACTOR,
                        memo=MEMOS["reversal"], idempotency_key=key)
            return
        original = self.entries[seq].request
        request = Request(
            "reversal",
            tuple((account, -amount) for account, amount in original.postings),
            MEMOS["reversal"],
            reverses=seq,
        )
        if original.kind in MODEL_NOT_REVERSIBLE:
            expected = errors.NotReversible
        else:
            expected = self.expected_seqs([(request, key)])
            fresh = not isinstance(expected, type) and expected[0] == len(self.entries)
            if fresh and seq in self.reversed_by:
                expected = errors.AlreadyReversed
        refusal = self.settle("reverse", [(request, key)], expected,
                              lambda: [self.send(request, key)])
        if expected is errors.AlreadyReversed:
            assert refusal.details["reversed_by"] == self.reversed_by[seq]

    @precondition(lambda self: self.requests_by_key)
    @rule(data=st.data())
    def retry_with_the_same_content(self, data: st.DataObject):
        key = data.draw(st.sampled_from(sorted(self.requests_by_key)), label="key")
        request, seq = self.requests_by_key[key]
        result = self.send(request, key)
        assert not result.created
        assert result.entry == self.entries[seq].recorded

    @precondition(lambda self: self.requests_by_key)
    @rule(data=st.data(), change=st.sampled_from(["memo", "points"]))
    def retry_with_other_content(self, data: st.DataObject, change: str):
        key = data.draw(st.sampled_from(sorted(self.requests_by_key)), label="key")
        request, seq = self.requests_by_key[key]
        if change == "points" and request.kind not in MODEL_NOT_REVERSIBLE:
            changed = replace(
                request,
                postings=tuple((account, 2 * amount) for account, amount in request.postings),
            )
        else:
            changed = replace(request, memo=request.memo + " (edited)")
        with pytest.raises(errors.IdempotencyConflict) as refused:
            self.send(changed, key)
        assert refused.value.details["seq"] == seq

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def balances_scores_and_head_match_the_model(self):
        found = {
            row.account: (row.balance_points, row.score_points)
            for row in balances(self.engine, self.village.code)
        }
        assert found == {
            account: (self.balance_points[account], self.score_points[account])
            for account in self.accounts
        }
        tip = head(self.engine, self.village.code)
        assert tip.size == len(self.entries)
        assert tip.head_hash == (self.entries[-1].recorded.hash if self.entries else None)

    @invariant()
    def chain_verifies(self):
        self.checks += 1
        if self.checks % VERIFY_EVERY_CHECKS == 0:
            self.assert_chain_verifies()

    def teardown(self) -> None:
        self.assert_chain_verifies()

    def assert_chain_verifies(self) -> None:
        verification = verify_chain(self.engine, self.village.code)
        assert verification.ok, str(verification.problem)
        assert verification.entries_checked == len(self.entries)


def test_the_ledger_agrees_with_a_plain_model(engine):
    machine = type(
        f"LedgerModelMachineOn{engine.dialect.name.title()}", (LedgerModelMachine,),
        {"engine": engine},
    )
    run_state_machine_as_test(
        machine, settings=settings(max_examples=15, stateful_step_count=25, deadline=None)
    )


# -- validation of postings ----------------------------------------------------------

KNOWN_ACCOUNTS = ("member:m0", "member:m1", "member:m2", ISSUANCE, PENALTY)
UNKNOWN_ACCOUNT = "member:nobody"
awkward_points = st.one_of(
    st.just(0),
    st.integers(-1000, 1000),
    st.integers(MAX_POINTS - 1, MAX_POINTS + 1) | st.integers(-MAX_POINTS - 1, -MAX_POINTS + 1),
    st.integers(min_value=2**63) | st.integers(max_value=-(2**63)),
    st.floats(),
    st.integers(-5, 5).map(float),
    st.booleans(),
    st.sampled_from(["5", None]),
)


@st.composite
def posting_lists(draw) -> list[tuple[str, Any]]:
    """Postings of any shape; half start balanced with one amount possibly spoilt."""
    accounts = draw(
        st.lists(st.sampled_from(KNOWN_ACCOUNTS + (UNKNOWN_ACCOUNT,)), min_size=0, max_size=5)
    )
    if draw(st.booleans()) and accounts:
        amounts: list[Any] = [draw(st.integers(-1000, 1000)) for _ in accounts[1:]]
        amounts.insert(0, -sum(amounts))
        if draw(st.booleans()):
            amounts[draw(st.integers(0, len(amounts) - 1))] = draw(awkward_points)
    else:
        amounts = [draw(awkward_points) for _ in accounts]
    return list(zip(accounts, amounts, strict=True))


def expected_refusal(postings: list[tuple[str, Any]]) -> tuple[type, str | None] | None:
    """The rules read plainly: the error and field the first broken one names, or None.

    Checked in order: at least two postings; then each posting, its account
    (not repeated) before its points (an int, not a bool, non-zero, at most
    2**53 - 1 either way); then the sum; then that every account exists.
    """
    if len(postings) < 2:
        return errors.UnbalancedPostings, "postings"
    seen: set[str] = set()
    for position, (account, amount) in enumerate(postings):
        if account in seen:
            return errors.InvalidEntry, f"postings[{position}].account"
        seen.add(account)
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_POINTS:
            return errors.InvalidAmount, f"postings[{position}].points"
    if sum(amount for _, amount in postings) != 0:
        return errors.UnbalancedPostings, "postings"
    if UNKNOWN_ACCOUNT in seen:
        return errors.UnknownAccount, None
    return None


def ledger_state(village) -> tuple[int, int, dict[str, int]]:
    """Head size, stored posting rows and balances: everything a write would move."""
    programme = get_programme(village.engine, village.code)
    with village.engine.connect() as connection:
        posting_rows = connection.execute(
            select(func.count()).where(PostingRow.programme_id == programme.id)
        ).scalar_one()
    figures = {row.account: row.balance_points for row in balances(village.engine, village.code)}
    return head(village.engine, village.code).size, posting_rows, figures


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(postings=posting_lists())
def test_postings_are_refused_exactly_when_the_rules_say(village, postings):
    size, posting_rows, figures = ledger_state(village)
    refusal = expected_refusal(postings)
    attempt = [Posting(account, amount) for account, amount in postings]

    if refusal is None:
        appended = append(village.engine, village.code, kind="award", postings=attempt,
                          actor=ACTOR)
        assert appended.created and appended.entry.seq == size
        for account, amount in postings:
            figures[account] += amount
        assert ledger_state(village) == (size + 1, posting_rows + len(postings), figures)
        return
    error, field = refusal
    with pytest.raises(errors.LedgerError) as refused:
        append(village.engine, village.code, kind="award", postings=attempt, actor=ACTOR)
    assert type(refused.value) is error, refused.value
    if field is None:
        assert refused.value.details["account"] == UNKNOWN_ACCOUNT
    else:
        assert refused.value.details["field"] == field
    assert ledger_state(village) == (size, posting_rows, figures)


BAD_POSTINGS = [
    pytest.param([("member:m0", 2.0), (ISSUANCE, -2.0)], id="floats"),
    pytest.param([("member:m0", True), (ISSUANCE, -1)], id="bool"),
    pytest.param([("member:m0", 0), (ISSUANCE, 0)], id="zeros"),
    pytest.param([("member:m0", MAX_POINTS + 1), (ISSUANCE, -MAX_POINTS - 1)], id="huge"),
    pytest.param([("member:m0", 5), (ISSUANCE, -4)], id="unbalanced"),
    pytest.param([("member:m0", 5)], id="one-leg"),
]


@pytest.mark.parametrize("bad_postings", BAD_POSTINGS)
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good_count=st.integers(1, 6), data=st.data())
def test_one_bad_draft_anywhere_in_a_batch_writes_nothing(village, bad_postings, good_count,
                                                          data):
    error, field = expected_refusal(bad_postings)
    bad_index = data.draw(st.integers(0, good_count), label="bad_index")
    drafts = [
        Draft("award", [Posting(village.account(index % 3), 1), Posting(ISSUANCE, -1)], ACTOR)
        for index in range(good_count)
    ]
    drafts.insert(bad_index, Draft("award", [Posting(a, p) for a, p in bad_postings], ACTOR))
    before = ledger_state(village)

    with pytest.raises(errors.LedgerError) as refused:
        append_batch(village.engine, village.code, drafts)
    assert type(refused.value) is error
    assert refused.value.details["field"] == field
    assert refused.value.details.get("index", 0) == bad_index
    assert ledger_state(village) == before
