"""Fixtures for API tests: an app per backend and a programme with a key for every role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.config import Settings
from ledger.keys import create_key
from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.programmes import create_programme
from ledger.rules import set_rule

ROLES = ("organiser", "reviewer", "admin", "auditor", "member", "shop", "operator", "other")
"""Every kind of caller: the four staff roles, a resident, a shop device, the operator,
and `other` (staff of another programme)."""

RULES = [
    {"code": "meeting", "name": "参加会议", "category": "会议我能到", "sign": "award", "points": 5,
     "caps": [{"per": "member", "period": "day", "max_times": 1}]},
    {"code": "volunteer", "name": "志愿服务", "category": "活动我参加", "sign": "award",
     "per_unit": {"unit": "minute", "points": 5, "per": 60, "max_quantity": 480}},
    {"code": "honour", "name": "优秀家庭", "category": "优秀我来当", "sign": "award", "points": 50,
     "approval": "always"},
    {"code": "litter", "name": "乱扔垃圾", "category": "环境卫生", "sign": "deduction", "points": 2,
     "approval": "always"},
]


@dataclass
class ApiTown:
    """A programme of the test's own: town → east, west villages; members e0..e2, w0."""

    client: FlaskClient
    code: str
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def url(self, path: str) -> str:
        return f"/programmes/{self.code}{path}"

    def get(self, path: str, role: str, **kwargs):
        return self.client.get(self.url(path), headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str, json=None, idempotency_key: str | None = None,
             **kwargs):
        return self.client.post(self.url(path), json=json,
                                headers=self.headers(role, idempotency_key), **kwargs)


@pytest.fixture(scope="session")
def app(database_url) -> Flask:
    return create_app(Settings(database_url=database_url, log_level="WARNING"))


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


def make_api_town(app: Flask, client: FlaskClient) -> ApiTown:
    engine = app.extensions["jifen"].engine
    code = f"t-{uuid.uuid4().hex[:10]}"
    create_programme(engine, code, f"API test {code}")
    create_unit(engine, code, "town", "测试镇", "town")
    create_unit(engine, code, "east", "东村", "village", "town")
    create_unit(engine, code, "west", "西村", "village", "town")
    create_household(engine, code, "he", "东一户", "east")
    create_household(engine, code, "hw", "西一户", "west")
    for member in ("e0", "e1", "e2"):
        create_member(engine, code, member, f"东村居民{member}", "he")
    create_member(engine, code, "w0", "西村居民", "hw")
    for principal, role in (("org", "organiser"), ("rev", "reviewer"), ("adm", "admin"),
                            ("aud", "auditor")):
        grant_role(engine, code, principal, role, "town")
    for rule in RULES:
        set_rule(engine, code, rule, "system:test")
    town = ApiTown(client, code)
    for role, kind, principal in (("organiser", "staff", "org"), ("reviewer", "staff", "rev"),
                                  ("admin", "staff", "adm"), ("auditor", "staff", "aud"),
                                  ("member", "member", "e0"), ("shop", "shop", "shop-1")):
        town.keys[role] = create_key(engine, kind=kind, principal=principal, label=role,
                                     programme=code).secret
    town.keys["operator"] = create_key(engine, kind="operator", principal="ops",
                                       label=f"ops-{code}").secret
    other = f"o-{uuid.uuid4().hex[:10]}"
    create_programme(engine, other, "another programme")
    create_unit(engine, other, "town", "别的镇", "town")
    grant_role(engine, other, "stranger", "admin", "town")
    town.keys["other"] = create_key(engine, kind="staff", principal="stranger", label="other",
                                    programme=other).secret
    return town


@pytest.fixture
def town(app, client) -> ApiTown:
    return make_api_town(app, client)
