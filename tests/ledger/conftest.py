"""Fixtures for the scoring-rule tests: a town of two villages, role grants, rule shorthands.

    /town/          organiser:town
    /town/east/     organiser:east, reviewer:east; households east-1 (e0, e2, ...)
                    and east-2 (e1, e3, ...)
    /town/west/     organiser:west, reviewer:west; household west-1 (w0, w1)

Each test gets a programme of its own on the shared database of its backend.
Rules are written by `system:test`, an operator actor holding every role.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ledger.awards import AwardRequest, Outcome, award
from ledger.chain import Entry, get_entry, head
from ledger.claims import ClaimInfo, list_claims
from ledger.models import Entry as EntryRow
from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.programmes import create_programme, get_programme
from ledger.rules import Rule, set_rule
from ledger.statements import AccountBalance, balance_of, balances
from ledger.verify import verify_chain

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULE_WRITER = "system:test"
TOWN_ORGANISER = "organiser:town"
EAST_ORGANISER = "organiser:east"
WEST_ORGANISER = "organiser:west"
EAST_REVIEWER = "reviewer:east"
WEST_REVIEWER = "reviewer:west"
WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
"""A Friday in the past (the ledger refuses occurred_at in the future)."""


def shanghai(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A wall-clock moment in the programme's time zone."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def rule_definition(code: str, **fields: Any) -> dict[str, Any]:
    """A valid rule definition: a fixed 5-point award unless `fields` say otherwise."""
    definition: dict[str, Any] = {
        "code": code,
        "name": f"rule {code}",
        "category": "test",
        "sign": "award",
        "points": 5,
    }
    definition.update(fields)
    if "per_unit" in fields:
        definition.pop("points")
    return definition


@dataclass(frozen=True)
class Snapshot:
    """Everything an award may write: the chain's size, every balance, every claim."""

    chain_size: int
    balances: tuple[AccountBalance, ...]
    claims: tuple[ClaimInfo, ...]


@dataclass
class Town:
    """A programme made for one test: a town, two villages, members and grants."""

    engine: Engine
    code: str
    east_members: list[str]
    west_members: list[str]

    def rule(self, code: str, **fields: Any) -> Rule:
        return set_rule(self.engine, self.code, rule_definition(code, **fields), RULE_WRITER)

    def award(self, member: str, rule: str, *, actor: str = EAST_ORGANISER,
              occurred_at: datetime = WHEN, dry_run: bool = False, **request: Any) -> Outcome:
        return award(
            self.engine, self.code,
            AwardRequest(member=member, rule=rule, occurred_at=occurred_at, **request),
            actor=actor, dry_run=dry_run,
        )

    def points(self, member: str) -> tuple[int, int]:
        """The member's (balance, score)."""
        figures = balance_of(self.engine, self.code, f"member:{member}")
        return figures.balance_points, figures.score_points

    def chain_size(self) -> int:
        return head(self.engine, self.code).size

    def snapshot(self) -> Snapshot:
        return Snapshot(self.chain_size(), tuple(balances(self.engine, self.code)),
                        tuple(list_claims(self.engine, self.code)))

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Every entry of the chain (of one kind), oldest first."""
        every = [get_entry(self.engine, self.code, seq) for seq in range(self.chain_size())]
        return [entry for entry in every if kind is None or entry.kind == kind]

    def entries_under(self, rule: str) -> int:
        """How many entries name `rule`, counted in the database."""
        programme = get_programme(self.engine, self.code)
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count()).where(EntryRow.programme_id == programme.id,
                                           EntryRow.rule_code == rule)
            ).scalar_one()

    def assert_verifies(self) -> None:
        verification = verify_chain(self.engine, self.code)
        assert verification.ok, str(verification.problem)


def make_town(engine: Engine, east_members: int = 4) -> Town:
    """Create a programme holding the tree in this module's docstring."""
    code = f"town-{uuid.uuid4().hex[:12]}"
    create_programme(engine, code, f"Test town {code}")
    create_unit(engine, code, "town", "测试镇", "town")
    create_unit(engine, code, "east", "东村", "village", parent="town")
    create_unit(engine, code, "west", "西村", "village", parent="town")
    create_household(engine, code, "east-1", "东一户", "east")
    create_household(engine, code, "east-2", "东二户", "east")
    create_household(engine, code, "west-1", "西一户", "west")
    east = [f"e{index}" for index in range(east_members)]
    for index, member in enumerate(east):
        create_member(engine, code, member, f"东村居民{index}",
                      "east-1" if index % 2 == 0 else "east-2")
    west = ["w0", "w1"]
    for index, member in enumerate(west):
        create_member(engine, code, member, f"西村居民{index}", "west-1")
    grant_role(engine, code, TOWN_ORGANISER, "organiser", "town")
    grant_role(engine, code, EAST_ORGANISER, "organiser", "east")
    grant_role(engine, code, WEST_ORGANISER, "organiser", "west")
    grant_role(engine, code, EAST_REVIEWER, "reviewer", "east")
    grant_role(engine, code, WEST_REVIEWER, "reviewer", "west")
    return Town(engine, code, east, west)


@pytest.fixture
def town(engine) -> Town:
    """A town of this test's own on the shared database."""
    return make_town(engine)
