"""A small demo programme: one village, ten residents, a few weeks of points.

Loaded by `jifen demo` (and `make run`) into an empty database so that a
person can look at balances, the chain head and verification at once.
Everything goes through the public ledger functions, as real use would.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ledger import errors
from ledger.accounts import ISSUANCE, PENALTY, member_account
from ledger.chain import Draft, Posting, append_batch, reverse
from ledger.models import Programme
from ledger.organisation import create_household, create_member, create_unit
from ledger.programmes import create_programme
from ledger.storage import read_transaction

PROGRAMME = "xingfu-village"
ORGANISER = "organiser:li-hua"

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
# (days ago, member, points, what happened); negative points are deductions (扣分).
ACTIVITIES = [
    (20, "m-zhang-wei", 5, "参加村民代表大会 (attended the villagers' meeting)"),
    (20, "m-wang-fang", 5, "参加村民代表大会 (attended the villagers' meeting)"),
    (20, "m-li-na", 5, "参加村民代表大会 (attended the villagers' meeting)"),
    (20, "m-chen-jie", 5, "参加村民代表大会 (attended the villagers' meeting)"),
    (15, "m-zhang-xiuying", 10, "志愿服务 2 小时: 清扫村道 (2 hours volunteering: swept the lanes)"),
    (15, "m-liu-yang", 10, "志愿服务 2 小时: 清扫村道 (2 hours volunteering: swept the lanes)"),
    (12, "m-li-qiang", 8, "庭院整洁 (tidy courtyard, monthly inspection)"),
    (12, "m-zhao-min", 8, "庭院整洁 (tidy courtyard, monthly inspection)"),
    (12, "m-chen-jing", -5, "垃圾未分类 (rubbish not sorted)"),
    (9, "m-liu-xiaohong", 20, "上报安全隐患, 已核实 (reported a hazard, confirmed)"),
    (7, "m-zhang-wei", 15, "带头发展庭院经济 (led a courtyard-economy project)"),
    (5, "m-wang-fang", -10, "大操大办宴席 (an over-sized banquet, against the village rules)"),
    (3, "m-li-na", 6, "参加环境整治活动 (joined the clean-up day)"),
    (3, "m-chen-jie", 6, "参加环境整治活动 (joined the clean-up day)"),
]


def load_demo(engine: Engine, now: datetime | None = None) -> str:
    """Create the demo programme and post its entries; returns the programme code.

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
    zone = ZoneInfo("Asia/Shanghai")
    now = now or datetime.now(zone)
    create_programme(engine, PROGRAMME, "幸福村积分制 (Xingfu village points)", "Asia/Shanghai")
    for code, name, kind, parent in UNITS:
        create_unit(engine, PROGRAMME, code, name, kind, parent)
    for code, name, unit in HOUSEHOLDS:
        create_household(engine, PROGRAMME, code, name, unit)
    for code, name, household in MEMBERS:
        create_member(engine, PROGRAMME, code, name, household)

    drafts = []
    for number, (days_ago, member, points, memo) in enumerate(ACTIVITIES, start=1):
        occurred_at = (now - timedelta(days=days_ago)).replace(hour=9, minute=30, second=0,
                                                               microsecond=0)
        source = ISSUANCE if points > 0 else PENALTY
        drafts.append(
            Draft(
                kind="award" if points > 0 else "deduction",
                postings=[Posting(member_account(member), points), Posting(source, -points)],
                actor=ORGANISER,
                occurred_at=occurred_at,
                memo=memo,
                idempotency_key=f"demo-{number:04d}",
            )
        )
    appended = append_batch(engine, PROGRAMME, drafts)
    mistaken = appended[-1].entry.seq
    reverse(
        engine,
        PROGRAMME,
        mistaken,
        actor=ORGANISER,
        memo="录入错误: 陈杰当天未到场 (entered by mistake: Chen Jie was not there)",
        idempotency_key="demo-reversal-0001",
    )
    return PROGRAMME
