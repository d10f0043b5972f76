"""Demo catalogue, consumer systems, access requests and grants, built with the services (idempotent).

The four base registries come from the synthetic generators in ``imports`` (20,000 residents by
default, ``YIWANG_DEMO_RESIDENTS`` to change it); the catalogue has their four entries and a few
catalogue-only department entries in every state (published, in review, draft, revoked, one with
two versions). Three consumer systems get API keys and grants: some unconditional at once, one
conditional approved with fewer items, one refused, one pending near its deadline, one escalated.
"""

from __future__ import annotations

import datetime as dt
import os
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from yiwang.core.calendar import add_working_days
from yiwang.org import services as org
from yiwang.org.models import ConsumerSystem, Unit, User
from yiwang.workflow import services as workflow
from yiwang.workflow.models import Action, Case, Task

from . import services
from .models import AccessRequest, CatalogEntry, EconomicIndicator, LegalEntity, Place, Resident

DEFAULT_RESIDENTS = 20_000
ENROLMENT_SYSTEM = "入学报名系统"


def _entry(
    class_code,
    name,
    abstract,
    keywords,
    sharing,
    registry="",
    *,
    condition="",
    basis="",
    method="api",
    open_type="closed",
    cycle="daily",
    fmt="database",
    related=(),
) -> dict:
    return {
        "class_code": class_code,
        "name": name,
        "abstract": abstract,
        "keywords": keywords,
        "format": fmt,
        "sharing_type": sharing,
        "sharing_condition": condition,
        "legal_basis": basis,
        "share_method": method,
        "open_type": open_type,
        "update_cycle": cycle,
        "related_codes": list(related),
        "registry": registry,
    }


def _item(
    code, name, sharing="unconditional", *, personal=False, mask="", data_type="string", length=None, synonyms=""
) -> dict:
    return {
        "code": code,
        "name": name,
        "sharing_type": sharing,
        "personal": personal,
        "mask": mask,
        "data_type": data_type,
        "length": length,
        "synonyms": synonyms,
    }


PSB_BASIS = "《中华人民共和国居民身份证法》；《政务信息资源共享管理暂行办法》（国发〔2016〕51号）"
RESIDENT = _entry(
    "101001001",
    "人口基础信息",
    "全区户籍人口的公民身份号码、姓名、性别、出生日期、民族、户籍地址、联系电话、所属街道等基础信息，每日更新。",
    "人口,户籍,身份证,居民",
    "conditional",
    "resident",
    condition="用于政务服务事项办理中的身份核验与资格审查；户籍地址、联系电话须经区公安分局同意。",
    basis=PSB_BASIS,
)
RESIDENT_ITEMS = [
    _item(
        "id_number", "公民身份号码", personal=True, mask="id_number", length=18, synonyms="身份证号码,身份证号,证件号码"
    ),
    _item("name", "姓名", personal=True, mask="name", synonyms="申请人姓名,户主姓名"),
    _item("gender", "性别"),
    _item("birth_date", "出生日期", data_type="date"),
    _item("ethnicity", "民族"),
    _item("address", "户籍地址", "conditional", personal=True, mask="address", synonyms="户籍所在地,住址"),
    _item("phone", "联系电话", "conditional", personal=True, mask="phone", synonyms="手机号码,联系方式"),
    _item("street", "所属街道（镇）"),
]
ENTITY = _entry(
    "102001001",
    "法人单位基础信息",
    "全区企业、事业单位、社会组织和个体工商户的统一社会信用代码、名称、类型、法定代表人、住所、登记状态等。",
    "法人,企业,统一社会信用代码,营业执照",
    "conditional",
    "legal_entity",
    condition="法定代表人联系电话仅提供给市场监管、税务、应急管理等执法部门。",
    basis="《企业信息公示暂行条例》；《政务信息资源共享管理暂行办法》",
    cycle="realtime",
)
ENTITY_ITEMS = [
    _item("credit_code", "统一社会信用代码", length=18, synonyms="信用代码,营业执照号"),
    _item("name", "名称", synonyms="企业名称,单位名称"),
    _item("kind", "类型"),
    _item("representative", "法定代表人", personal=True, mask="name", synonyms="法人代表,负责人"),
    _item("registered_capital", "注册资本（万元）", data_type="decimal"),
    _item("established_on", "成立日期", data_type="date"),
    _item("industry", "行业"),
    _item("address", "住所", synonyms="注册地址,经营场所"),
    _item("phone", "联系电话", "conditional", personal=True, mask="phone"),
    _item("status", "登记状态"),
]
PLACE = _entry(
    "103001001",
    "标准地址与建筑物信息",
    "全区标准地址、建筑物名称、类型、所属街道、经纬度和层数，供网格管理、应急指挥等使用。",
    "地址,门牌,建筑物,空间地理",
    "unconditional",
    "place",
    cycle="weekly",
    open_type="conditional",
)
PLACE_ITEMS = [
    _item("code", "地址编码"),
    _item("address", "标准地址", synonyms="地址,详细地址"),
    _item("building", "建筑物名称"),
    _item("kind", "类型"),
    _item("street", "所属街道（镇）"),
    _item("longitude", "经度", data_type="decimal"),
    _item("latitude", "纬度", data_type="decimal"),
    _item("floors", "层数", data_type="integer"),
]
ECONOMY = _entry(
    "104001001",
    "宏观经济指标",
    "北仑区地区生产总值、规上工业增加值、固定资产投资、社会消费品零售总额等年度和季度指标（2015 年起）。",
    "经济,统计,GDP,指标",
    "unconditional",
    "economy",
    cycle="quarterly",
    open_type="open",
)
ECONOMY_ITEMS = [
    _item("code", "指标代码"),
    _item("name", "指标名称"),
    _item("period", "统计期"),
    _item("value", "数值", data_type="decimal"),
    _item("measure", "计量单位"),
    _item("region", "地区"),
    _item("source", "来源单位"),
]

# provider unit, entry, items, final state ("published" / "review" / "draft" / "revoked")
DEPARTMENT_ENTRIES = [
    (
        "BL-EDU",
        _entry(
            "301001001",
            "中小学生学籍信息",
            "全区公办、民办中小学在籍学生的学籍号、就读学校、年级、入学年份。",
            "学籍,学生,入学",
            "conditional",
            condition="仅用于教育、民政、人社的资格审核；不向社会开放。",
            basis="《中小学生学籍管理办法》（教基一〔2013〕7号）",
            method="file",
            cycle="monthly",
            fmt="spreadsheet",
        ),
        [
            _item("student_no", "学籍号"),
            _item("student_name", "学生姓名", personal=True, mask="name"),
            _item("school", "就读学校"),
            _item("grade", "年级"),
            _item("enrolled_year", "入学年份", data_type="integer"),
            _item("guardian_phone", "监护人电话", "conditional", personal=True, mask="phone"),
        ],
        "published",
    ),
    (
        "BL-BID",
        _entry(
            "304001001",
            "政府投资项目招投标信息",
            "政府投资项目的招标公告、中标单位、中标金额和合同签订情况。",
            "招投标,中标,政府投资",
            "unconditional",
            method="file",
            open_type="open",
            cycle="realtime",
            fmt="document",
        ),
        [
            _item("project_name", "项目名称"),
            _item("winner", "中标单位"),
            _item("amount", "中标金额（万元）", data_type="decimal"),
            _item("signed_on", "合同签订日期", data_type="date"),
        ],
        "published",
    ),
    (
        "BL-FIN",
        _entry(
            "302001001",
            "财政惠民补贴发放信息",
            "各类惠民惠农财政补贴的发放对象、补贴项目、金额和发放日期。",
            "补贴,惠民,一卡通",
            "conditional",
            condition="仅提供给补贴主管部门和纪检监察机关用于核查。",
            basis="《浙江省财政惠民惠农补贴资金“一卡通”管理办法》",
            method="file",
            cycle="monthly",
            fmt="spreadsheet",
        ),
        [
            _item("recipient_name", "发放对象", personal=True, mask="name"),
            _item("recipient_id", "证件号码", personal=True, mask="id_number"),
            _item("subsidy", "补贴项目"),
            _item("amount", "金额（元）", data_type="decimal"),
            _item("paid_on", "发放日期", data_type="date"),
        ],
        "review",
    ),
    (
        "BL-QTS",
        _entry(
            "303001001",
            "特种设备登记信息",
            "电梯、锅炉、压力容器等特种设备的登记、使用单位和定期检验情况。",
            "特种设备,电梯,检验",
            "unconditional",
            cycle="weekly",
        ),
        [
            _item("device_code", "设备代码"),
            _item("kind", "设备种类"),
            _item("owner", "使用单位"),
            _item("next_check", "下次检验日期", data_type="date"),
        ],
        "draft",
    ),
    (
        "BL-ECON",
        _entry(
            "305001001",
            "规上工业企业能耗信息",
            "规模以上工业企业的月度综合能耗与单位增加值能耗。",
            "能耗,工业,节能",
            "conditional",
            condition="仅提供给发改、统计部门。",
            basis="《节约能源法》",
            method="file",
            cycle="monthly",
            fmt="spreadsheet",
        ),
        [
            _item("company", "企业名称"),
            _item("month", "月份"),
            _item("energy", "综合能耗（吨标煤）", data_type="decimal"),
        ],
        "revoked",
    ),
]

# system name, unit code, description
SYSTEMS = [
    (ENROLMENT_SYSTEM, "BL-EDU", "义务教育阶段新生入学网上报名与资格核验"),
    ("81890 工单系统", "BL-HOTLINE", "81890 求助服务中心的诉求受理与派单"),
    ("网格管理系统", "BL-XD", "新碶街道基层治理“四个平台”网格管理"),
]


def _people() -> dict[str, User]:
    names = [
        "egov",
        "psb_staff",
        "psb_head",
        "aic_staff",
        "works_staff",
        "ndrc_staff",
        "edu_admin",
        "edu_head",
        "fin_staff",
        "qts_staff",
        "econ_staff",
        "bid_staff",
        "staff",
        "hotline",
        "xd_staff",
        "xd_head",
    ]
    return {u.username: u for u in User.objects.filter(username__in=names)}


def _review(entry: CatalogEntry, *, submitter: User, egov: User, approve: bool = True) -> CatalogEntry:
    """Submit and let the e-gov office answer its review task."""
    entry = services.entry_submit(actor=submitter, entry=entry, comment="请审核。")
    task = Task.objects.filter(case=entry.review_case, status=Task.Status.OPEN).select_related("assignee").first()
    if task is None:
        return entry
    reviewer = egov if task.assignee_id == egov.pk else task.assignee
    if approve:
        workflow.task_approve(task=task, actor=reviewer, comment="同意发布。")
    else:
        workflow.task_reject(task=task, actor=reviewer, comment="请补充共享依据后再提交。")
    entry.refresh_from_db()
    return entry


def _keep(provider: Unit, data: dict, items: list[dict], *, actor: User, egov: User, state: str) -> int:
    """Create the entry in the wanted state unless its class already has one; returns 1 if created."""
    if CatalogEntry.objects.filter(code__startswith=data["class_code"] + "/").exists():
        return 0
    entry = services.entry_save(actor=actor, data=data, items=items, provider=provider)
    if state == "draft":
        return 1
    if state == "review":
        services.entry_submit(actor=actor, entry=entry, comment="新增目录，请审核。")
        return 1
    entry = _review(entry, submitter=actor, egov=egov)
    if state == "revoked":
        services.entry_revoke(actor=actor, entry=entry, reason="企业能耗数据改由市级平台统一共享。")
    return 1


def _registries(residents: int) -> dict[str, int]:
    from . import imports

    made = {}
    if Resident.objects.count() < residents:
        made["人口"] = imports.residents_generate(count=residents)
    entities = max(50, residents // 10)
    if LegalEntity.objects.count() < entities:
        made["法人"] = imports.entities_generate(count=entities)
    places = max(50, residents // 8)
    if Place.objects.count() < places:
        made["地址"] = imports.places_generate(count=places)
    if not EconomicIndicator.objects.exists():
        made["经济指标"] = imports.indicators_generate()
    return made


def _system(name: str, unit: Unit, description: str) -> tuple[ConsumerSystem, str]:
    """The demo system and, when its key is issued now, the raw key (shown once)."""
    system = ConsumerSystem.objects.filter(name=name, unit=unit).first()
    if system is None:
        system = org.system_create(actor=None, name=name, unit=unit, description=description)
    if system.keys.exists():
        return system, ""
    _key, raw = org.api_key_issue(
        actor=None, system=system, name="演示密钥", scopes=["exchange:read", "exchange:write"]
    )
    return system, raw


def _asked(system: ConsumerSystem, code: str) -> bool:
    return AccessRequest.objects.filter(system=system, entry__code=code).exists()


def _backdate(request: AccessRequest, *, due: dt.date, days_ago: int) -> None:
    """Make a fresh request look asked ``days_ago`` days ago with reply deadline ``due``: the
    request, its case, the case's open task and the start in the timeline alike."""
    when = timezone.now() - dt.timedelta(days=days_ago)
    AccessRequest.objects.filter(pk=request.pk).update(due_date=due, created_at=when)
    if request.case_id:
        Case.objects.filter(pk=request.case_id).update(due_date=due, started_at=when, submitted_at=when)
        Task.objects.filter(case_id=request.case_id).update(due_date=due, created_at=when)
        Action.objects.filter(case_id=request.case_id).update(created_at=when)


def _leader_task(request: AccessRequest) -> Task | None:
    return Task.objects.filter(case_id=request.case_id, status=Task.Status.OPEN).select_related("assignee").first()


def _requests(systems: dict[str, ConsumerSystem], entries: dict[str, CatalogEntry], people: dict[str, User]) -> int:
    made = 0
    enrol, hotline, grid = systems[ENROLMENT_SYSTEM], systems["81890 工单系统"], systems["网格管理系统"]
    resident, entity = entries.get("101001001"), entries.get("102001001")
    place, economy, school = entries.get("103001001"), entries.get("104001001"), entries.get("301001001")
    # 1. conditional, approved with fewer items: the enrolment system's identity checks
    if resident and not _asked(enrol, resident.code):
        request = services.request_create(
            actor=people.get("edu_admin") or enrol.account,
            system=enrol,
            entry=resident,
            items=["id_number", "name", "gender", "birth_date", "address", "phone", "street"],
            unmasked=["address"],
            purpose="义务教育入学资格核验：核对适龄儿童及监护人的户籍信息",
            legal_basis="《中华人民共和国义务教育法》第十二条",
            service_item="义务教育阶段新生入学登记",
        )
        task = _leader_task(request)
        if task is not None:
            services.request_decide(
                actor=task.assignee,
                request=request,
                approve=True,
                items=["id_number", "name", "gender", "birth_date", "address", "street"],
                unmasked=[],
                reason="同意核验户籍信息；联系电话与入学核验无关，不予提供；户籍地址脱敏提供。",
            )
        made += 1
    # 2. unconditional at once: the hotline looks companies up, the grid system reads places and figures
    if entity and not _asked(hotline, entity.code):
        services.request_create(
            actor=hotline.account,
            system=hotline,
            entry=entity,
            items=["credit_code", "name", "kind", "address", "status"],
            purpose="诉求涉及企业的身份核实与派单",
            service_item="81890 诉求受理",
        )
        made += 1
    if place and not _asked(grid, place.code):
        services.request_create(
            actor=grid.account,
            system=grid,
            entry=place,
            items=["code", "address", "building", "street", "longitude", "latitude"],
            purpose="网格事件定位与上图",
            service_item="基层治理网格事件处置",
        )
        made += 1
    if economy and not _asked(grid, economy.code):
        services.request_create(
            actor=grid.account,
            system=grid,
            entry=economy,
            items=["code", "name", "period", "value", "measure"],
            purpose="街道经济运行分析",
        )
        made += 1
    # 3. refused with a reason: plain-text phone numbers for the hotline
    if resident and not _asked(hotline, resident.code):
        request = services.request_create(
            actor=hotline.account,
            system=hotline,
            entry=resident,
            items=["name", "phone"],
            unmasked=["phone"],
            purpose="回访时核对来电人身份",
            service_item="81890 诉求回访",
        )
        task = _leader_task(request)
        if task is not None:
            services.request_decide(
                actor=task.assignee,
                request=request,
                approve=False,
                reason="回访使用来电号码即可，户籍登记的联系电话属个人信息，不予提供明文。",
            )
        made += 1
    # 4. pending, due within two working days: the grid system asks for addresses
    if resident and not _asked(grid, resident.code):
        request = services.request_create(
            actor=people.get("xd_staff") or grid.account,
            system=grid,
            entry=resident,
            items=["id_number", "name", "address", "street"],
            purpose="网格内实有人口核查",
            legal_basis="《浙江省流动人口居住登记条例》",
            service_item="实有人口登记",
        )
        # as if asked eight working days ago
        _backdate(request, due=add_working_days(timezone.localdate(), 2), days_ago=11)
        made += 1
    # 5. escalated: the hotline asked for school records and 区教育局 let the deadline pass
    if school and not _asked(hotline, school.code):
        request = services.request_create(
            actor=hotline.account,
            system=hotline,
            entry=school,
            items=["student_no", "school", "grade", "guardian_phone"],
            purpose="涉学生诉求转办时核对学籍并联系监护人",
            service_item="81890 诉求受理",
        )
        today = timezone.localdate()
        _backdate(request, due=add_working_days(today, -3), days_ago=20)
        services.requests_escalate(today=today)
        made += 1
    return made


@transaction.atomic
def _catalogue(units: dict[str, Unit], people: dict[str, User]) -> int:
    egov = people["egov"]
    made = 0

    def actor(username: str) -> User:
        return people.get(username) or egov

    if not CatalogEntry.objects.filter(code__startswith="101001001/").exists():
        # two versions: v1 published, then revised (民族 added, wording) and v2 published over it
        v1_items = [i for i in RESIDENT_ITEMS if i["code"] != "ethnicity"]
        v1 = services.entry_save(
            actor=actor("psb_staff"),
            provider=units["BL-PSB"],
            items=v1_items,
            data={**RESIDENT, "abstract": "全区户籍人口的身份号码、姓名、性别、出生日期、户籍地址等。"},
        )
        v1 = _review(v1, submitter=actor("psb_staff"), egov=egov)
        v2 = services.entry_revise(actor=actor("psb_staff"), entry=v1)
        v2 = services.entry_save(actor=actor("psb_staff"), entry=v2, data=RESIDENT, items=RESIDENT_ITEMS)
        _review(v2, submitter=actor("psb_staff"), egov=egov)
        made += 1
    made += _keep(units["BL-AIC"], ENTITY, ENTITY_ITEMS, actor=actor("aic_staff"), egov=egov, state="published")
    made += _keep(units["BL-WORKS"], PLACE, PLACE_ITEMS, actor=actor("works_staff"), egov=egov, state="published")
    made += _keep(units["BL-NDRC"], ECONOMY, ECONOMY_ITEMS, actor=actor("ndrc_staff"), egov=egov, state="published")
    staff_of = {
        "BL-EDU": "edu_admin",
        "BL-BID": "bid_staff",
        "BL-FIN": "fin_staff",
        "BL-QTS": "qts_staff",
        "BL-ECON": "econ_staff",
    }
    for unit_code, data, items, state in DEPARTMENT_ENTRIES:
        if unit_code in units:
            made += _keep(units[unit_code], data, items, actor=actor(staff_of[unit_code]), egov=egov, state=state)
    return made


def load(*, residents: int | None = None) -> dict[str, object]:
    """Create what is missing; returns what was created (and the enrolment system's key when new)."""
    codes = [
        "BL",
        "BL-PSB",
        "BL-AIC",
        "BL-WORKS",
        "BL-NDRC",
        "BL-EDU",
        "BL-BID",
        "BL-FIN",
        "BL-QTS",
        "BL-ECON",
        "BL-HOTLINE",
        "BL-XD",
        settings.YIWANG_EGOV_UNIT,
    ]
    units = {u.code: u for u in Unit.objects.filter(code__in=codes)}
    people = _people()
    if "BL" not in units or "egov" not in people:
        return {"目录": 0, "申请": 0}
    if residents is None:
        raw = os.environ.get("YIWANG_DEMO_RESIDENTS", "")
        residents = int(raw) if raw.isdigit() else DEFAULT_RESIDENTS
    generated = _registries(residents)
    made_entries = _catalogue(units, people)
    systems, keys = {}, {}
    with transaction.atomic():
        for name, unit_code, description in SYSTEMS:
            if unit_code in units:
                systems[name], keys[name] = _system(name, units[unit_code], description)
        entries = {e.code.split("/")[0]: e for e in CatalogEntry.objects.filter(status=CatalogEntry.Status.PUBLISHED)}
        made_requests = _requests(systems, entries, people) if len(systems) == len(SYSTEMS) else 0
    result: dict[str, object] = {"目录": made_entries, "申请": made_requests}
    result.update({f"{k}记录": v for k, v in generated.items()})
    if keys.get(ENROLMENT_SYSTEM):
        sample = Resident.objects.order_by("id").values_list("id_number", flat=True).first() or "<公民身份号码>"
        result[f"{ENROLMENT_SYSTEM} API 密钥（只显示这一次）"] = keys[ENROLMENT_SYSTEM]
        port = os.environ.get("PORT") or "8000"  # bin/demo's web port
        result["试一试"] = (
            f'curl -H "Authorization: Api-Key {keys[ENROLMENT_SYSTEM]}" '
            f'"http://127.0.0.1:{port}/api/exchange/gateway/101001001/000001/records/{sample}/?purpose={quote("入学资格核验")}"'
        )
    return result
