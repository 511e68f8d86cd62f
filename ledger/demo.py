"""A small demo programme: one village, ten residents, a few weeks of points.

Loaded by `jifen demo` (and `make run`) into an empty database so that a
person can look at balances, rules, claims and verification at once.
Everything goes through the public services (catalog import, awards,
claims, reversal), as real use would, so the demo is also a smoke test.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ledger import errors
from ledger.awards import AwardRequest, award_sheet
from ledger.catalogs import import_catalog, load_catalog, sample_catalog_path
from ledger.chain import reverse
from ledger.claims import approve
from ledger.keys import create_key
from ledger.models import Programme
from ledger.organisation import create_household, create_member, create_unit, grant_role
from ledger.programmes import create_programme
from ledger.storage import read_transaction

PROGRAMME = "xingfu-village"
TIME_ZONE = "Asia/Shanghai"
OPERATOR = "system:demo"
ORGANISER = "li-hua"
"""李华, the village's points organiser: organiser on 幸福村."""
REVIEWER = "zhao-gang"
"""赵刚, of the town office: reviewer on 清水镇 (approves claims)."""
ADMIN = "wu-min"
"""吴敏, programme administrator on 清水镇 (rules, people, keys)."""
AUDITOR = "sun-li"
"""孙丽, of the town finance office: auditor on 清水镇 (reads everything, changes nothing)."""
RESIDENT = "m-li-na"
"""李娜, a resident, with a member key: reads her own balance and statement."""

DEMO_KEYS = [
    # (kind, principal, label, prefix): the secret is derived from the label, so the demo's
    # credentials are the same on every machine. Never use these outside the demo.
    ("staff", ORGANISER, "demo organiser", "demoorgani"),
    ("staff", REVIEWER, "demo reviewer", "demoreview"),
    ("staff", ADMIN, "demo admin", "demoadmina"),
    ("staff", AUDITOR, "demo auditor", "demoauditr"),
    ("member", RESIDENT, "demo resident", "demoreside"),
]
CATALOGS = ("community-24", "village-rules", "volunteer-hours", "hazard-reports")

UNITS = [
    ("qingshui-town", "清水镇", "town", None),
    ("xingfu", "幸福村", "village", "qingshui-town"),
    ("xingfu-group-1", "幸福村一组", "group", "xingfu"),
    ("xingfu-group-2", "幸福村二组", "group", "xingfu"),
]
HOUSEHOLDS = [
    ("h-zhang", "张家", "xingfu-group-1"),
    ("h-wang", "王家", "xingfu-group-1"),
    ("h-li", "李家", "xingfu-group-1"),
    ("h-zhao", "赵家", "xingfu-group-2"),
    ("h-chen", "陈家", "xingfu-group-2"),
    ("h-liu", "刘家", "xingfu-group-2"),
]
MEMBERS = [
    ("m-zhang-wei", "张伟", "h-zhang"),
    ("m-zhang-xiuying", "张秀英", "h-zhang"),
    ("m-wang-fang", "王芳", "h-wang"),
    ("m-li-na", "李娜", "h-li"),
    ("m-li-qiang", "李强", "h-li"),
    ("m-zhao-min", "赵敏", "h-zhao"),
    ("m-chen-jie", "陈杰", "h-chen"),
    ("m-chen-jing", "陈静", "h-chen"),
    ("m-liu-yang", "刘洋", "h-liu"),
    ("m-liu-xiaohong", "刘晓红", "h-liu"),
]
# (days ago, member, rule, quantity, memo, with evidence)
ACTIVITIES = [
    (20, "m-zhang-wei", "meeting.residents-assembly", None, "村民代表大会签到", False),
    (20, "m-wang-fang", "meeting.residents-assembly", None, "村民代表大会签到", False),
    (20, "m-li-na", "meeting.residents-assembly", None, "村民代表大会签到", False),
    (20, "m-chen-jie", "meeting.residents-assembly", None, "村民代表大会签到", False),
    (15, "m-zhang-xiuying", "activity.volunteer-service", 120, "清扫村道 2 小时", False),
    (15, "m-liu-yang", "activity.volunteer-service", 150, "清扫村道 2.5 小时", False),
    (12, "m-li-qiang", "village.tidy-courtyard", None, "月度庭院检查", False),
    (12, "m-zhao-min", "village.tidy-courtyard", None, "月度庭院检查", False),
    (9, "m-liu-xiaohong", "hazard.confirmed-report", None, "随手拍: 村口路灯损坏, 已核实", True),
    (3, "m-li-na", "activity.cleanup", None, "环境整治日", False),
    (3, "m-chen-jie", "activity.cleanup", None, "环境整治日", False),
]
# Deductions need a second person: proposed by the organiser, approved by the reviewer.
DEDUCTIONS = [
    (12, "m-chen-jing", "village.garbage-unsorted", "垃圾未分类, 第二次提醒后仍未改正"),
    (5, "m-wang-fang", "village.banquet-oversized", "升学宴超过规定桌数"),
]
PENDING = [
    (2, "m-zhang-wei", "development.industry-lead", "带头成立葡萄种植合作社 (awaiting review)"),
]


def demo_secret(label: str) -> str:
    """The fixed secret of a demo key: 43 URL-safe characters derived from its label."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"jifen-demo:{label}".encode()).digest()
                                    ).decode().rstrip("=")


def demo_credentials() -> list[tuple[str, str, str]]:
    """(who, role, API key) for each demo key, to print for a person trying the demo."""
    return [(principal, label.removeprefix("demo "), f"jf_{prefix}_{demo_secret(label)}")
            for _, principal, label, prefix in DEMO_KEYS]


def load_demo(engine: Engine, now: datetime | None = None) -> str:
    """Create the demo programme, its rules, people and a few weeks of entries.

    Raises `DatabaseNotEmpty` if any programme exists: the demo never mixes
    into real data.
    """
    with read_transaction(engine) as connection:
        programmes = connection.execute(select(func.count()).select_from(Programme)).scalar_one()
    if programmes:
        raise errors.DatabaseNotEmpty(
            f"the database already holds {programmes} programme(s); the demo loads only into "
            "an empty database (point JIFEN_DATABASE_URL at a new file to try it)"
        )
    zone = ZoneInfo(TIME_ZONE)
    now = now or datetime.now(zone)
    create_programme(engine, PROGRAMME, "幸福村积分制 (Xingfu village points)", TIME_ZONE)
    for code, name, kind, parent in UNITS:
        create_unit(engine, PROGRAMME, code, name, kind, parent)
    for code, name, unit in HOUSEHOLDS:
        create_household(engine, PROGRAMME, code, name, unit)
    for code, name, household in MEMBERS:
        create_member(engine, PROGRAMME, code, name, household)
    grant_role(engine, PROGRAMME, ORGANISER, "organiser", "xingfu")
    grant_role(engine, PROGRAMME, REVIEWER, "reviewer", "qingshui-town")
    grant_role(engine, PROGRAMME, ADMIN, "admin", "qingshui-town")
    grant_role(engine, PROGRAMME, AUDITOR, "auditor", "qingshui-town")
    for kind, principal, label, prefix in DEMO_KEYS:
        create_key(engine, kind=kind, principal=principal, label=label, programme=PROGRAMME,
                   prefix=prefix, secret=demo_secret(label))
    for name in CATALOGS:
        import_catalog(engine, PROGRAMME, load_catalog(sample_catalog_path(name)), OPERATOR)

    def morning(days_ago: int) -> datetime:
        return (now - timedelta(days=days_ago)).replace(hour=9, minute=30, second=0,
                                                        microsecond=0)

    def evidence(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    sheet = [
        AwardRequest(member, rule, quantity, morning(days), evidence(memo) if with_evidence
                     else None, memo, f"demo-sheet:{number}")
        for number, (days, member, rule, quantity, memo, with_evidence) in enumerate(ACTIVITIES)
    ]
    proposals = [
        AwardRequest(member, rule, None, morning(days), evidence(memo), memo, f"demo-claim:{n}")
        for n, (days, member, rule, memo) in enumerate(DEDUCTIONS + PENDING)
    ]
    outcomes = award_sheet(engine, PROGRAMME, sheet + proposals, actor=ORGANISER)
    refused = [outcome for outcome in outcomes if outcome.error is not None]
    if refused:
        raise refused[0].error
    for outcome in outcomes[len(sheet): len(sheet) + len(DEDUCTIONS)]:
        approve(engine, PROGRAMME, outcome.claim_id, reviewer=REVIEWER)
    mistaken = outcomes[len(ACTIVITIES) - 1].entry.seq
    reverse(
        engine,
        PROGRAMME,
        mistaken,
        actor=ORGANISER,
        memo="录入错误: 陈杰当天未到场 (entered by mistake: Chen Jie was not there)",
        idempotency_key="demo-reversal:0",
    )
    return PROGRAMME
