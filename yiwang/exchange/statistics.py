"""调用统计: gateway calls per day, busiest resources and systems, how providers answer.

Reads only. Call figures come from ``CallDay`` (the gateway's day counters: ``calls`` counts
every call, ``denied`` those that returned no data — refused, no such record or failed —
and ``errors`` the failures, status ≥ 500); request and dispute figures from
``AccessRequest`` and ``Dispute``.

Who sees what (``stats_scope``): the e-gov office, platform admins and district-wide roles
see the whole district; anyone else sees the usage of the resources their units provide
and the calls of their units' systems (a leader: the unit and the units below it).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yiwang.core.calendar import working_days_between
from yiwang.core.permissions import ALL
from yiwang.org.models import ConsumerSystem, Unit

from .models import AccessRequest, CallDay, CatalogEntry, Dispute

DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP = 10
# Dates a filter may name: wide enough for any real question, narrow enough that a day more or
# a timezone shift never leaves Python's date range (0001–9999).
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def date_check(value: dt.date | None) -> None:
    """Raise ValueError (a Chinese message) for a date outside EARLIEST–LATEST."""
    if value is not None and not EARLIEST <= value <= LATEST:
        raise ValueError(_("日期须在 %(a)s 至 %(b)s 之间。") % {"a": EARLIEST.isoformat(), "b": LATEST.isoformat()})


class Side:
    """Which of a unit's roles the figures are about."""

    BOTH = ""
    PROVIDER = "provider"
    CONSUMER = "consumer"
    CHOICES = [
        (BOTH, gettext_lazy("提供与使用")),
        (PROVIDER, gettext_lazy("作为提供方")),
        (CONSUMER, gettext_lazy("作为使用方")),
    ]


@dataclass(frozen=True)
class StatsScope:
    """``everything`` for the district-wide view, else the units whose figures may be shown."""

    everything: bool
    unit_ids: frozenset[int]

    def allows(self, unit_id: int) -> bool:
        return self.everything or unit_id in self.unit_ids


def stats_scope(user) -> StatsScope:
    """What ``user`` may see in the statistics (see the module docstring)."""
    from .services import is_egov

    if user is None or not user.is_authenticated:
        return StatsScope(False, frozenset())
    visible = user.visible_unit_ids()
    if visible is ALL or is_egov(user):
        return StatsScope(True, frozenset())
    return StatsScope(False, frozenset(visible))


def period_clean(*, days: int | None = None, date_from: dt.date | None = None, date_to: dt.date | None = None):
    """(first day, last day) of a period: the last ``days`` days up to today, or the given dates;
    raises ValueError with a Chinese message when the period is empty or longer than MAX_DAYS."""
    today = timezone.localdate()
    if date_from is None and date_to is None:
        days = DEFAULT_DAYS if days is None else days
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(_("统计天数须在 1 到 %(max)d 之间。") % {"max": MAX_DAYS})
        return today - dt.timedelta(days=days - 1), today
    date_check(date_from)
    date_check(date_to)
    date_to = date_to or today
    date_from = date_from or date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise ValueError(_("截止日期不能早于起始日期。"))
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise ValueError(_("统计区间最长 %(max)d 天。") % {"max": MAX_DAYS})
    return date_from, date_to


def _units_filter(scope: StatsScope, unit_id: int | None) -> frozenset[int] | None:
    """Units to limit to (None: no limit)."""
    if unit_id is not None:
        return frozenset({unit_id}) if scope.allows(unit_id) else frozenset()
    return None if scope.everything else scope.unit_ids


def calls(*, scope: StatsScope, unit_id: int | None = None, side: str = Side.BOTH) -> QuerySet[CallDay]:
    """The CallDay rows ``scope`` may see, for one unit if given, as provider and/or consumer."""
    rows = CallDay.objects.all()
    units = _units_filter(scope, unit_id)
    if units is None:
        return rows
    if side == Side.PROVIDER:
        return rows.filter(provider_id__in=units)
    if side == Side.CONSUMER:
        return rows.filter(unit_id__in=units)
    return rows.filter(Q(provider_id__in=units) | Q(unit_id__in=units))


def _sum(rows: QuerySet, *fields: str) -> dict:
    return {name: value or 0 for name, value in rows.aggregate(**{f: Sum(f) for f in fields}).items()}


def _resource_names(codes) -> dict[str, tuple[str, int]]:
    """code → (name, provider id) of the latest version of each resource."""
    names: dict[str, tuple[str, int]] = {}
    for code, name, provider in (
        CatalogEntry.objects.filter(code__in=set(codes))
        .order_by("code", "version")
        .values_list("code", "name", "provider_id")
    ):
        names[code] = (name, provider)
    return names


def call_figures(*, scope: StatsScope, date_from: dt.date, date_to: dt.date, unit_id=None, side=Side.BOTH) -> dict:
    """Totals, calls per day (every day of the period), the top resources and systems."""
    rows = calls(scope=scope, unit_id=unit_id, side=side).filter(day__gte=date_from, day__lte=date_to)
    totals = _sum(rows, "calls", "denied", "errors", "records", "bytes", "total_ms")
    totals["max_ms"] = rows.order_by("-max_ms").values_list("max_ms", flat=True).first() or 0
    totals["served"] = max(0, totals["calls"] - totals["denied"])
    totals["avg_ms"] = round(totals.pop("total_ms") / totals["calls"], 1) if totals["calls"] else None
    totals["max_ms"] = round(totals["max_ms"], 1)
    totals["systems"] = rows.values("system_id").distinct().count()
    totals["resources"] = rows.values("resource_code").distinct().count()

    per_day = {
        row["day"]: row
        for row in rows.values("day").annotate(calls=Sum("calls"), denied=Sum("denied"), errors=Sum("errors"))
    }
    daily = []
    for offset in range((date_to - date_from).days + 1):
        day = date_from + dt.timedelta(days=offset)
        row = per_day.get(day, {})
        total, denied = row.get("calls") or 0, row.get("denied") or 0
        daily.append(
            {
                "day": day,
                "calls": total,
                "served": max(0, total - denied),
                "denied": denied,
                "errors": row.get("errors") or 0,
            }
        )

    top_resources = list(
        rows.values("resource_code", "provider_id")
        .annotate(calls=Sum("calls"), denied=Sum("denied"), records=Sum("records"))
        .order_by("-calls", "resource_code")[: TOP * 2]
    )
    merged: dict[str, dict] = {}
    for row in top_resources:  # one resource may have moved providers: merge by code
        item = merged.setdefault(
            row["resource_code"], {"calls": 0, "denied": 0, "records": 0, "provider": row["provider_id"]}
        )
        for name in ("calls", "denied", "records"):
            item[name] += row[name] or 0
    names = _resource_names(merged)
    providers = dict(Unit.objects.filter(pk__in={v["provider"] for v in merged.values()}).values_list("pk", "name"))
    resources = sorted(
        (
            {
                "code": code,
                "name": names.get(code, (code, None))[0],
                "provider": providers.get(values["provider"], ""),
                "calls": values["calls"],
                "denied": values["denied"],
                "records": values["records"],
            }
            for code, values in merged.items()
        ),
        key=lambda r: (-r["calls"], r["code"]),
    )[:TOP]

    top_systems = list(
        rows.values("system_id", "unit_id")
        .annotate(calls=Sum("calls"), denied=Sum("denied"), records=Sum("records"))
        .order_by("-calls", "system_id")[:TOP]
    )
    system_names = dict(
        ConsumerSystem.objects.filter(pk__in={r["system_id"] for r in top_systems}).values_list("pk", "name")
    )
    unit_names = dict(Unit.objects.filter(pk__in={r["unit_id"] for r in top_systems}).values_list("pk", "name"))
    systems = [
        {
            "id": row["system_id"],
            "name": system_names.get(row["system_id"], f"#{row['system_id']}"),
            "unit": unit_names.get(row["unit_id"], ""),
            "calls": row["calls"] or 0,
            "denied": row["denied"] or 0,
            "records": row["records"] or 0,
        }
        for row in top_systems
    ]
    return {"totals": totals, "daily": daily, "resources": resources, "systems": systems}


def provider_figures(*, scope: StatsScope, date_from: dt.date, date_to: dt.date, unit_id=None) -> list[dict]:
    """Per provider unit: requests received in the period, answered, on time, average working
    days to answer; requests and disputes open now, and how many of them are overdue."""
    units = _units_filter(scope, unit_id)
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    today = timezone.localdate()

    requests = AccessRequest.objects.filter(created_at__gte=start, created_at__lt=end)
    open_requests = AccessRequest.objects.filter(status__in=AccessRequest.OPEN)
    disputes = Dispute.objects.filter(status=Dispute.Status.OPEN)
    published = CatalogEntry.objects.filter(status=CatalogEntry.Status.PUBLISHED)
    if units is not None:
        requests = requests.filter(entry__provider_id__in=units)
        open_requests = open_requests.filter(entry__provider_id__in=units)
        disputes = disputes.filter(provider_id__in=units)
        published = published.filter(provider_id__in=units)

    rows: dict[int, dict] = defaultdict(
        lambda: {
            "received": 0,
            "auto": 0,
            "answered": 0,
            "on_time": 0,
            "days": [],
            "open": 0,
            "overdue": 0,
            "disputes_open": 0,
            "disputes_overdue": 0,
            "resources": 0,
        }
    )
    for row in published.values("provider_id").annotate(n=Count("id")):
        rows[row["provider_id"]]["resources"] = row["n"]
    for provider, created, due, decided, status in requests.values_list(
        "entry__provider_id", "created_at", "due_date", "decided_at", "status"
    ):
        row = rows[provider]
        row["received"] += 1
        if due is None:  # unconditional: granted by the platform at once, nobody had to answer
            row["auto"] += status == AccessRequest.Status.GRANTED
            continue
        if decided is None:
            continue
        decided_on = timezone.localdate(decided)
        row["answered"] += 1
        row["on_time"] += decided_on <= due
        row["days"].append(working_days_between(timezone.localdate(created), decided_on))
    for provider, due in open_requests.values_list("entry__provider_id", "due_date"):
        rows[provider]["open"] += 1
        rows[provider]["overdue"] += due is not None and due < today
    for provider, due in disputes.values_list("provider_id", "due_date"):
        rows[provider]["disputes_open"] += 1
        rows[provider]["disputes_overdue"] += due < today

    names = dict(Unit.objects.filter(pk__in=rows).values_list("pk", "name"))
    out = []
    for provider, row in rows.items():
        days = row.pop("days")
        row.update(
            unit_id=provider,
            unit=names.get(provider, f"#{provider}"),
            on_time_rate=round(row["on_time"] * 100 / row["answered"], 1) if row["answered"] else None,
            avg_days=round(sum(days) / len(days), 1) if days else None,
        )
        out.append(row)
    out.sort(key=lambda r: (-r["received"], -r["open"], -r["resources"], r["unit"]))
    return out


def statistics(
    *,
    user,
    days: int | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    unit_id: int | None = None,
    side: str = Side.BOTH,
) -> dict:
    """Every figure of the statistics page for ``user`` (the page and the API show the same)."""
    scope = stats_scope(user)
    first, last = period_clean(days=days, date_from=date_from, date_to=date_to)
    figures = call_figures(scope=scope, date_from=first, date_to=last, unit_id=unit_id, side=side)
    figures["providers"] = (
        [] if side == Side.CONSUMER else provider_figures(scope=scope, date_from=first, date_to=last, unit_id=unit_id)
    )
    figures["period"] = {"from": first, "to": last, "days": (last - first).days + 1}
    figures["scope"] = {"district": scope.everything, "unit": unit_id, "side": side}
    return figures


def unit_choices(user) -> list[Unit]:
    """Units the unit filter offers: every active unit for the district view, else the visible ones."""
    scope = stats_scope(user)
    units = Unit.objects.filter(status=Unit.Status.ACTIVE).order_by("path")
    if not scope.everything:
        units = units.filter(pk__in=scope.unit_ids)
    return list(units)
