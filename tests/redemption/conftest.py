"""Fixtures for the redemption tests: a programme whose members have points, and its shops.

Each test gets a programme of its own on the shared database of its backend
(`engine` runs every test on SQLite and on PostgreSQL). Points are awarded
straight to the chain: what is tested here is what redemption does with
them, whatever awarded them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Engine

from ledger.accounts import ISSUANCE
from ledger.chain import Posting, append
from ledger.statements import balance_of, balances
from ledger.verify import verify_chain
from redemption.shops import create_shop
from tests.conftest import Village, make_village

STARTING_POINTS = 1_000
ORGANISER = "organiser:test"
CASHIER = "shop:rice:till-1"


@dataclass
class Market:
    """A village whose members each hold `STARTING_POINTS`, with shops `rice` and `oil`."""

    village: Village

    @property
    def engine(self) -> Engine:
        return self.village.engine

    @property
    def code(self) -> str:
        return self.village.code

    def member(self, index: int) -> str:
        return self.village.members[index]

    def balance(self, account: str) -> int:
        return balance_of(self.engine, self.code, account).balance_points

    def member_balance(self, index: int) -> int:
        return self.balance(self.village.account(index))

    def assert_books_hold(self) -> None:
        """The chain verifies and every account's balance sums to zero over the programme."""
        verification = verify_chain(self.engine, self.code)
        assert verification.ok, str(verification.problem)
        assert sum(row.balance_points for row in balances(self.engine, self.code)) == 0


def award(engine: Engine, programme: str, account: str, points: int) -> None:
    append(engine, programme, kind="award",
           postings=[Posting(account, points), Posting(ISSUANCE, -points)], actor=ORGANISER)


def make_market(engine: Engine, members: int = 4) -> Market:
    village = make_village(engine, members=members)
    for index in range(members):
        award(engine, village.code, village.account(index), STARTING_POINTS)
    create_shop(engine, village.code, "rice", "王家米店", ["village"], "138-0000-0001")
    create_shop(engine, village.code, "oil", "李记粮油", [], "")
    return Market(village)


@pytest.fixture
def market(engine) -> Market:
    return make_market(engine)
