"""Authentication (API keys) and authorisation (role plus organisation subtree).

A request carries `Authorization: Bearer jf_<prefix>_<secret>`. Staff keys
act with the roles their principal is granted, each on a unit's subtree;
member keys read their own member's data; operator keys hold every role.
Views call one of the `require_*` functions before doing anything; each
either returns the caller or raises a 401/403 problem that says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app, g, request

from api.problems import ApiProblem
from ledger.keys import KeyHolder, verify_key
from ledger.organisation import member_record, principal_roles, unit_path_of, within

STAFF_ROLES = ("organiser", "reviewer", "admin", "auditor")


@dataclass(frozen=True)
class Caller:
    holder: KeyHolder

    @property
    def actor(self) -> str:
        return self.holder.actor

    @property
    def kind(self) -> str:
        return self.holder.kind


def engine():
    return current_app.extensions["jifen"].engine


def authenticate() -> Caller:
    """The caller of this request; 401 without a valid key."""
    if "caller" in g:
        return g.caller
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem("unauthenticated",
                         "send an API key as `Authorization: Bearer jf_<prefix>_<secret>`")
    g.caller = Caller(verify_key(engine(), token.strip()))
    return g.caller


def require_programme(programme: str) -> Caller:
    """Any valid key of `programme` (or an operator key)."""
    caller = authenticate()
    if caller.kind != "operator" and caller.holder.programme != programme:
        raise ApiProblem("forbidden", f"this key belongs to another programme than {programme!r}")
    return caller


def require_operator() -> Caller:
    caller = authenticate()
    if caller.kind != "operator":
        raise ApiProblem("forbidden", "only an operator key may do this")
    return caller


def require_staff(programme: str, roles: Iterable[str], unit_path: str | None = None) -> Caller:
    """A staff (or operator) key holding one of `roles`, on a subtree holding `unit_path`.

    With `unit_path` None, the role anywhere in the programme suffices (the
    service then checks the subtree itself, as awards do).
    """
    caller = require_programme(programme)
    roles = tuple(roles)
    if caller.kind == "operator":
        return caller
    if caller.kind != "staff":
        raise ApiProblem("forbidden", f"a {caller.kind} key may not do this; it needs "
                         f"{' or '.join(roles)} staff")
    held = principal_roles(engine(), programme, caller.holder.principal)
    for role in roles:
        paths = held.get(role, [])
        if paths and (unit_path is None or within(unit_path, paths)):
            return caller
    unit = unit_path.strip("/").split("/")[-1] if unit_path else None
    where = "" if unit is None else f" on a unit holding {unit!r}"
    raise ApiProblem("forbidden", f"{caller.holder.principal!r} needs the role "
                     f"{' or '.join(roles)}{where}", needed_roles=list(roles))


def require_member_access(programme: str, member: str, roles: Iterable[str] = STAFF_ROLES):
    """The member's own key, or staff with one of `roles` over the member's unit."""
    caller = require_programme(programme)
    if caller.kind == "member":
        if caller.holder.principal != member:
            raise ApiProblem("forbidden", "a member key reads only its own member's data")
        return caller
    return require_staff(programme, roles, member_record(engine(), programme, member).unit_path)


def require_unit_role(programme: str, roles: Iterable[str], unit: str) -> Caller:
    """Staff with one of `roles` on a subtree holding unit `unit`."""
    return require_staff(programme, roles, unit_path_of(engine(), programme, unit))
