"""Reads of the catalogue, access requests and grants: who sees which rows, filters, figures.

Visibility: published, superseded and revoked versions of the catalogue are open to every
member of staff (the catalogue is the district's shared index); versions being edited (draft,
in review) only to their provider's people and the e-gov office. Requests and grants are seen
by the consumer unit, the provider unit and the e-gov office.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yiwang.core.permissions import ALL, scope
from yiwang.core.search import search
from yiwang.org.models import ConsumerSystem, Unit, User

from .models import AccessRequest, CallDay, CatalogEntry, Grant
from .services import can_manage_entry, can_use_system, is_egov

PUBLIC_STATUSES = (
    CatalogEntry.Status.PUBLISHED,
    CatalogEntry.Status.SUPERSEDED,
    CatalogEntry.Status.REVOKED,
)
# 资源分类 大类 (first digit of the class code)
MAJOR_CLASSES = {"1": _("基础信息资源"), "2": _("主题信息资源"), "3": _("部门信息资源")}
# Names of the 中类 this district uses (the guideline leaves them to each catalogue); others are
# shown by their code, 部门信息资源 by their provider.
MIDDLE_CLASSES = {
    "101": _("人口基础信息"),
    "102": _("法人单位基础信息"),
    "103": _("自然资源和空间地理基础信息"),
    "104": _("宏观经济基础信息"),
    "105": _("社会信用基础信息"),
    "106": _("电子证照基础信息"),
    "201": _("社会保障"),
    "202": _("教育文化"),
    "203": _("医疗健康"),
    "204": _("城乡建设"),
    "205": _("市场监管"),
    "206": _("公共安全"),
}
USAGE_DAYS = 30


def keeper_unit_ids(user: User):
    """Units whose unpublished catalogue versions the user may see: ALL for the e-gov office,
    else the units in the user's scope (a district-wide role other than the e-gov office sees
    only its own unit's drafts)."""
    if is_egov(user):
        return ALL
    ids = user.visible_unit_ids()
    if ids is ALL:
        return frozenset({user.acting_unit_id}) if user.acting_unit_id else frozenset()
    return ids


# --- catalogue ---------------------------------------------------------------------------------


def entries_visible(user: User) -> QuerySet[CatalogEntry]:
    """Every catalogue version the user may see."""
    qs = CatalogEntry.objects.select_related("provider")
    if user is None or not user.is_authenticated:
        return qs.none()
    if getattr(user, "is_system", False):
        return qs.filter(status=CatalogEntry.Status.PUBLISHED)
    units = keeper_unit_ids(user)
    if units is ALL:
        return qs
    return qs.filter(Q(status__in=PUBLIC_STATUSES) | Q(provider_id__in=units))


@dataclass
class EntryFilters:
    q: str = ""
    major: str = ""  # 大类: "1" / "2" / "3"
    middle: str = ""  # 中类 prefix: three digits, e.g. "101"
    provider: int | None = None
    sharing_type: str = ""
    share_method: str = ""
    open_type: str = ""
    update_cycle: str = ""
    registry: str = ""
    status: str = ""  # "" current (published + the user's open versions), "all", or a status

    @property
    def active(self) -> bool:
        return any(
            (
                self.q,
                self.major,
                self.middle,
                self.provider,
                self.sharing_type,
                self.share_method,
                self.open_type,
                self.update_cycle,
                self.registry,
                self.status,
            )
        )


def entry_list(*, user: User, filters: EntryFilters | None = None) -> QuerySet[CatalogEntry]:
    """The catalogue as the browser, the exports and the API list it."""
    f = filters or EntryFilters()
    qs = entries_visible(user)
    if f.status == "all":
        pass
    elif f.status:
        qs = qs.filter(status=f.status)
    else:
        qs = qs.filter(status__in=(CatalogEntry.Status.PUBLISHED, *CatalogEntry.OPEN_VERSIONS))
    if f.middle:
        qs = qs.filter(class_code__startswith=f.middle)
    elif f.major:
        qs = qs.filter(class_code__startswith=f.major)
    if f.provider:
        qs = qs.filter(provider_id=f.provider)
    for name in ("sharing_type", "share_method", "open_type", "update_cycle"):
        if getattr(f, name):
            qs = qs.filter(**{name: getattr(f, name)})
    if f.registry == "none":
        qs = qs.filter(registry="")
    elif f.registry:
        qs = qs.filter(registry=f.registry)
    if f.q:
        qs = search(qs, f.q)
    return qs.order_by("class_code", "code", "-version")


def class_tree(*, user: User) -> list[dict]:
    """The 大类 with the 中类 present in what the user sees now (published and own drafts), with counts."""
    qs = entry_list(user=user).values_list("class_code", "provider__name")
    majors: dict[str, dict] = {}
    for class_code, provider_name in qs:
        major = majors.setdefault(
            class_code[0],
            {
                "code": class_code[0],
                "name": MAJOR_CLASSES.get(class_code[0], class_code[0]),
                "count": 0,
                "children": {},
            },
        )
        major["count"] += 1
        prefix = class_code[:3]
        child = major["children"].setdefault(
            prefix, {"code": prefix, "name": _middle_name(prefix, provider_name), "count": 0}
        )
        child["count"] += 1
    tree = []
    for code in sorted(MAJOR_CLASSES):
        major = majors.get(code, {"code": code, "name": MAJOR_CLASSES[code], "count": 0, "children": {}})
        major["children"] = [major["children"][k] for k in sorted(major["children"])]
        tree.append(major)
    return tree


def _middle_name(prefix: str, provider_name: str) -> str:
    if prefix in MIDDLE_CLASSES:
        return str(MIDDLE_CLASSES[prefix])
    if prefix.startswith("3") and provider_name:
        return provider_name
    return str(_("中类 %(code)s") % {"code": prefix[1:]})


def class_label(class_code: str) -> str:
    """“基础信息资源 · 人口基础信息” for a class code."""
    major = MAJOR_CLASSES.get(class_code[:1], "")
    middle = MIDDLE_CLASSES.get(class_code[:3])
    return f"{major} · {middle}" if middle else str(major)


def entry_get(*, user: User, pk: int) -> CatalogEntry | None:
    return entries_visible(user).filter(pk=pk).first()


def entry_versions(*, user: User, entry: CatalogEntry) -> QuerySet[CatalogEntry]:
    """Every version of the entry's resource the user may see, newest first."""
    return entries_visible(user).filter(code=entry.code).select_related("created_by").order_by("-version")


def provider_choices(*, user: User) -> QuerySet[Unit]:
    ids = entries_visible(user).values("provider_id")
    return Unit.objects.filter(pk__in=ids).order_by("path")


def provider_units(*, user: User) -> list[Unit]:
    """Units for which the user may compile catalogue entries (acting unit first)."""
    if is_egov(user):
        units = list(Unit.objects.filter(status=Unit.Status.ACTIVE).order_by("path"))
    else:
        units = [
            u
            for u in scope(Unit.objects.filter(status=Unit.Status.ACTIVE), user, unit_field="pk").order_by("path")
            if can_manage_entry(user, provider=u)
        ]
    acting = user.acting_unit
    if acting is not None and can_manage_entry(user, provider=acting):
        units = [acting] + [u for u in units if u.pk != acting.pk]
    return units


def entry_usage(*, entry: CatalogEntry, days: int = USAGE_DAYS) -> dict:
    """Gateway figures of the resource (all versions) over the last ``days`` days."""
    since = timezone.localdate() - dt.timedelta(days=days - 1)
    rows = CallDay.objects.filter(resource_code=entry.code, day__gte=since)
    totals = rows.aggregate(calls=Sum("calls"), denied=Sum("denied"), records=Sum("records"))
    per_day = dict(rows.values("day").annotate(n=Sum("calls")).values_list("day", "n"))
    systems = rows.values("system_id").distinct().count()
    return {
        "days": days,
        "calls": totals["calls"] or 0,
        "denied": totals["denied"] or 0,
        "records": totals["records"] or 0,
        "systems": systems,
        "series": [(since + dt.timedelta(days=n), per_day.get(since + dt.timedelta(days=n), 0)) for n in range(days)],
    }


def live_grants_of(*, code: str) -> QuerySet[Grant]:
    return Grant.objects.filter(resource_code=code, revoked_at__isnull=True).select_related("system", "unit")


# --- consumer systems ---------------------------------------------------------------------------


def systems_for(*, user: User) -> list[ConsumerSystem]:
    """Consumer systems the user may ask for access with: those of the acting unit first, then
    any others the user manages (unit admins, the e-gov office); a system's own account gets itself."""
    if getattr(user, "is_system", False):
        own = ConsumerSystem.objects.filter(account=user).select_related("unit")
        return list(own)
    acting = user.acting_unit_id
    mine = list(ConsumerSystem.objects.filter(unit_id=acting, account__is_active=True).select_related("unit"))
    if is_egov(user) or user.visible_unit_ids() is not ALL:
        others = scope(ConsumerSystem.objects.filter(account__is_active=True), user).exclude(unit_id=acting)
        mine += [s for s in others.select_related("unit").order_by("unit__path", "name") if can_use_system(user, s)]
    return mine


# --- access requests ------------------------------------------------------------------------------

REQUEST_TABS = ("mine", "todo", "all")


def requests_visible(user: User) -> QuerySet[AccessRequest]:
    """Requests of the user's units (as consumer or as provider); all for the e-gov office."""
    qs = AccessRequest.objects.select_related("system", "unit", "entry", "entry__provider", "requested_by")
    if is_egov(user):
        return qs
    units = user.visible_unit_ids()
    if units is ALL:
        units = frozenset({user.acting_unit_id})
    return qs.filter(Q(unit_id__in=units) | Q(entry__provider_id__in=units))


def request_tabs(user: User) -> list[str]:
    return list(REQUEST_TABS) if is_egov(user) else ["mine", "todo"]


def request_list(
    *, user: User, tab: str = "mine", status: str = "", q: str = "", overdue: bool = False, entry: int | None = None
) -> QuerySet[AccessRequest]:
    qs = requests_visible(user)
    if tab == "all" and is_egov(user):
        pass
    elif tab == "todo":
        units = user.visible_unit_ids()
        if units is ALL:
            units = frozenset({user.acting_unit_id})
        todo = Q(entry__provider_id__in=units)
        if is_egov(user):
            todo |= Q(status=AccessRequest.Status.ESCALATED)
        qs = qs.filter(todo)
    else:
        units = user.visible_unit_ids()
        if units is ALL:
            units = frozenset({user.acting_unit_id})
        qs = qs.filter(unit_id__in=units)
    if status == "open":
        qs = qs.filter(status__in=AccessRequest.OPEN)
    elif status:
        qs = qs.filter(status=status)
    if overdue:
        qs = qs.filter(status__in=AccessRequest.OPEN, due_date__lt=timezone.localdate())
    if entry:
        qs = qs.filter(entry_id=entry)
    if q:
        qs = qs.filter(
            Q(entry__name__icontains=q)
            | Q(entry__code__icontains=q)
            | Q(system__name__icontains=q)
            | Q(purpose__icontains=q)
        )
    return qs.order_by("-id")


def request_get(*, user: User, pk: int) -> AccessRequest | None:
    return requests_visible(user).filter(pk=pk).first()


def requests_to_answer_count(user: User) -> int:
    """Open requests the user may answer now (their task, or the e-gov office for escalated ones)."""
    qs = requests_visible(user).filter(status__in=AccessRequest.OPEN)
    if not is_egov(user):
        from yiwang.workflow.models import Task

        cases = Task.objects.filter(assignee=user, status=Task.Status.OPEN).values("case_id")
        qs = qs.filter(case_id__in=cases)
        return qs.count()
    return qs.filter(status=AccessRequest.Status.ESCALATED).count()


# --- grants -------------------------------------------------------------------------------------

GRANT_TABS = ("mine", "given", "all")


def grants_visible(user: User) -> QuerySet[Grant]:
    qs = Grant.objects.select_related("system", "unit", "provider", "request")
    if is_egov(user):
        return qs
    units = user.visible_unit_ids()
    if units is ALL:
        units = frozenset({user.acting_unit_id})
    return qs.filter(Q(unit_id__in=units) | Q(provider_id__in=units))


def grant_tabs(user: User) -> list[str]:
    return list(GRANT_TABS) if is_egov(user) else ["mine", "given"]


def grant_list(
    *, user: User, tab: str = "mine", q: str = "", state: str = "", system: int | None = None
) -> QuerySet[Grant]:
    qs = grants_visible(user)
    units = user.visible_unit_ids()
    if units is ALL:
        units = frozenset({user.acting_unit_id})
    if tab == "all" and is_egov(user):
        pass
    elif tab == "given":
        qs = qs.filter(provider_id__in=units)
    else:
        qs = qs.filter(unit_id__in=units)
    today = timezone.localdate()
    if state == "live":
        qs = qs.filter(revoked_at__isnull=True).filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
    elif state == "revoked":
        qs = qs.filter(revoked_at__isnull=False)
    elif state == "expired":
        qs = qs.filter(revoked_at__isnull=True, expires_on__lt=today)
    if system:
        qs = qs.filter(system_id=system)
    if q:
        codes = CatalogEntry.objects.filter(Q(name__icontains=q) | Q(code__icontains=q)).values("code")
        qs = qs.filter(Q(resource_code__in=codes) | Q(system__name__icontains=q) | Q(purpose__icontains=q))
    return qs.order_by("-id")


def grant_get(*, user: User, pk: int) -> Grant | None:
    return grants_visible(user).filter(pk=pk).first()


def entries_by_code(codes) -> dict[str, CatalogEntry]:
    """The current version of each resource code: published, else the newest."""
    out: dict[str, CatalogEntry] = {}
    for entry in CatalogEntry.objects.filter(code__in=set(codes)).select_related("provider").order_by("-version"):
        current = out.get(entry.code)
        if current is None or (
            entry.status == CatalogEntry.Status.PUBLISHED and current.status != CatalogEntry.Status.PUBLISHED
        ):
            out[entry.code] = entry
    return out


@dataclass
class GrantCalls:
    calls: int = 0
    last_day: dt.date | None = None
    by_day: list = field(default_factory=list)


def grant_usage(*, grant: Grant, days: int = USAGE_DAYS) -> GrantCalls:
    since = timezone.localdate() - dt.timedelta(days=days - 1)
    rows = CallDay.objects.filter(system_id=grant.system_id, resource_code=grant.resource_code, day__gte=since)
    data = rows.aggregate(calls=Sum("calls"))
    last = rows.filter(calls__gt=0).order_by("-day").values_list("day", flat=True).first()
    return GrantCalls(calls=data["calls"] or 0, last_day=last)


def status_counts(qs: QuerySet, field_name: str = "status") -> dict[str, int]:
    return dict(qs.order_by().values_list(field_name).annotate(n=Count("id")))
