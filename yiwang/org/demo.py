"""The fictional demo district (北仑-like, from the seed speeches), built with org.services.

Idempotent: units and people that already exist (by code / username) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from . import services
from .models import Role, Unit, User

DEMO_PASSWORD = "Yiwang@2026"

# code, name, kind, parent code
UNITS: list[tuple[str, str, str, str | None]] = [
    ("BL", "北仑区人民政府", "district", None),
    ("BL-EGOV", "区电子政务办", "bureau", "BL"),
    ("BL-ITC", "区信息中心", "bureau", "BL"),
    ("BL-PSB", "区公安分局", "bureau", "BL"),
    ("BL-EDU", "区教育局", "bureau", "BL"),
    ("BL-EDU-OFF", "区教育局办公室", "office", "BL-EDU"),
    ("BL-EDU-BAS", "区教育局基础教育科", "office", "BL-EDU"),
    ("BL-FIN", "区财政局", "bureau", "BL"),
    ("BL-NDRC", "区发改局", "bureau", "BL"),
    ("BL-ECON", "区经信局", "bureau", "BL"),
    ("BL-WORKS", "区建筑工务局", "bureau", "BL"),
    ("BL-BID", "区招投标中心", "bureau", "BL"),
    ("BL-QTS", "质监分局", "bureau", "BL"),
    ("BL-AIC", "工商分局", "bureau", "BL"),
    ("BL-DISC", "区纪委", "bureau", "BL"),
    ("BL-ORG", "区委组织部", "bureau", "BL"),
    ("BL-HOTLINE", "81890 求助服务中心", "bureau", "BL"),
    ("BL-XD", "新碶街道", "street", "BL"),
    ("BL-XD-JFS", "九峰山社区", "community", "BL-XD"),
    ("BL-XD-DG", "大港社区", "community", "BL-XD"),
    ("BL-DQ", "大碶街道", "street", "BL"),
    ("BL-DQ-HX", "和兴社区", "community", "BL-DQ"),
    ("BL-CX", "春晓街道", "street", "BL"),
    ("BL-BC", "白峰镇", "town", "BL"),
    ("BL-BC-YS", "阳东村", "village", "BL-BC"),
]


@dataclass
class DemoPerson:
    username: str
    full_name: str
    unit: str
    role: str
    title: str
    mobile: str
    leader_rank: str = ""


PEOPLE: list[DemoPerson] = [
    DemoPerson("admin", "周平", "BL-EGOV", Role.PLATFORM_ADMIN, "平台管理员", "13905740001"),
    DemoPerson("egov", "吴建国", "BL-EGOV", Role.EGOV_OFFICE, "电子政务办主任", "13905740002", "principal"),
    DemoPerson("itc", "郑晓东", "BL-ITC", Role.UNIT_ADMIN, "信息中心主任", "13905740003", "principal"),
    DemoPerson("leader", "陈海波", "BL", Role.LEADER, "副区长", "13905740004", "deputy"),
    DemoPerson("mayor", "孙立明", "BL", Role.LEADER, "区长", "13905740005", "principal"),
    DemoPerson("edu_head", "林芳", "BL-EDU", Role.LEADER, "局长", "13905740006", "principal"),
    DemoPerson("edu_deputy", "黄志强", "BL-EDU", Role.LEADER, "副局长", "13905740007", "deputy"),
    DemoPerson("edu_admin", "何雪", "BL-EDU", Role.UNIT_ADMIN, "办公室主任", "13905740008"),
    DemoPerson("staff", "王丽", "BL-EDU-OFF", Role.STAFF, "科员", "13905740009"),
    DemoPerson("edu_staff2", "张伟", "BL-EDU-BAS", Role.STAFF, "科员", "13905740010"),
    DemoPerson("fin_head", "刘洋", "BL-FIN", Role.FINANCE, "局长", "13905740011", "principal"),
    DemoPerson("fin_staff", "李娜", "BL-FIN", Role.STAFF, "科员", "13905740012"),
    DemoPerson("ndrc_head", "杨帆", "BL-NDRC", Role.NDRC, "局长", "13905740013", "principal"),
    DemoPerson("ndrc_staff", "赵磊", "BL-NDRC", Role.STAFF, "科员", "13905740014"),
    DemoPerson("psb_staff", "钱勇", "BL-PSB", Role.STAFF, "民警", "13905740015"),
    DemoPerson("psb_head", "冯刚", "BL-PSB", Role.LEADER, "分局长", "13905740016", "principal"),
    DemoPerson("econ_staff", "蒋敏", "BL-ECON", Role.STAFF, "科员", "13905740017"),
    DemoPerson("works_staff", "韩涛", "BL-WORKS", Role.STAFF, "工程师", "13905740018"),
    DemoPerson("bid_staff", "曹颖", "BL-BID", Role.STAFF, "科员", "13905740019"),
    DemoPerson("qts_staff", "邓超", "BL-QTS", Role.STAFF, "科员", "13905740020"),
    DemoPerson("aic_staff", "许静", "BL-AIC", Role.STAFF, "科员", "13905740021"),
    DemoPerson("disc", "沈清", "BL-DISC", Role.DISCIPLINE, "纪检监察员", "13905740022"),
    DemoPerson("org_staff", "彭辉", "BL-ORG", Role.STAFF, "科员", "13905740023"),
    DemoPerson("hotline", "袁媛", "BL-HOTLINE", Role.HOTLINE_OPERATOR, "话务员", "13905740024"),
    DemoPerson("hotline2", "潘婷", "BL-HOTLINE", Role.HOTLINE_OPERATOR, "话务员", "13905740025"),
    DemoPerson("xd_head", "戴军", "BL-XD", Role.LEADER, "街道主任", "13905740026", "principal"),
    DemoPerson("xd_staff", "夏雨", "BL-XD", Role.STAFF, "科员", "13905740027"),
    DemoPerson("jfs_staff", "钟华", "BL-XD-JFS", Role.STAFF, "社区书记", "13905740028"),
    DemoPerson("dg_staff", "汪洁", "BL-XD-DG", Role.STAFF, "社区主任", "13905740029"),
    DemoPerson("dq_staff", "田野", "BL-DQ", Role.STAFF, "科员", "13905740030"),
    DemoPerson("cx_staff", "任杰", "BL-CX", Role.STAFF, "科员", "13905740031"),
    DemoPerson("bf_staff", "姜红", "BL-BC", Role.STAFF, "科员", "13905740032"),
]

# Posts held in a second unit (兼职): username, unit code, role, title
EXTRA_POSTS = [("itc", "BL-EGOV", Role.STAFF, "兼电子政务办副主任")]

# Logins printed by ``manage.py demo_data``: username, what to try with it
DEMO_LOGINS = [
    ("admin", "平台管理员（需绑定身份验证器，开发环境可用 manage.py otp_code admin 取动态码）"),
    ("leader", "副区长：可查看全区各单位"),
    ("edu_head", "区教育局局长：可查看教育局及下属科室"),
    ("staff", "区教育局办公室科员：只能查看本科室"),
    ("itc", "区信息中心主任（兼电子政务办）：可切换单位"),
    ("egov", "电子政务办主任：审核资源目录、处理逾期共享申请、查看全部调用记录"),
    ("psb_staff", "区公安分局民警：维护人口基础库和资源目录、答复疑义"),
    ("psb_head", "区公安分局长：答复共享申请"),
    ("edu_admin", "区教育局办公室主任：为入学报名系统申请共享数据"),
]


@transaction.atomic
def load() -> dict[str, int]:
    """Create what is missing; returns how many units and people were created."""
    services.ensure_roles()
    created_units = created_people = 0
    by_code = {u.code: u for u in Unit.objects.filter(code__in=[c for c, *_ in UNITS])}
    for code, name, kind, parent_code in UNITS:
        if code not in by_code:
            by_code[code] = services.unit_create(
                actor=None, name=name, code=code, kind=kind, parent=by_code[parent_code] if parent_code else None
            )
            created_units += 1
    roles = {r.code: r for r in Role.objects.all()}
    existing = set(User.objects.filter(username__in=[p.username for p in PEOPLE]).values_list("username", flat=True))
    for person in PEOPLE:
        if person.username in existing:
            continue
        services.person_create(
            actor=None,
            username=person.username,
            full_name=person.full_name,
            mobile=person.mobile,
            password=DEMO_PASSWORD,
            posts=[
                services.PostSpec(
                    unit=by_code[person.unit],
                    role=roles[person.role],
                    title=person.title,
                    leader_rank=person.leader_rank,
                )
            ],
        )
        created_people += 1
        for username, unit_code, role, title in EXTRA_POSTS:
            if username == person.username:
                services.post_add(
                    actor=None,
                    person=User.objects.get(username=username),
                    spec=services.PostSpec(unit=by_code[unit_code], role=roles[role], title=title),
                )
    return {"units": created_units, "people": created_people}
