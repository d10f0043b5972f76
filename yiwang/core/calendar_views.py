"""节假日安排: the years whose holidays are known, and the form to enter a year's notice
(platform admins only). The rules live in ``calendar_services``; this is the page."""

from __future__ import annotations

import datetime as dt
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import calendar
from .calendar_services import MAX_YEAR, MIN_YEAR, NoticeRow, calendar_year_save

HOLIDAY, WORKDAY = "holiday", "workday"
EXTRA_ROWS = 4


class NoticeRowForm(forms.Form):
    """One row of the notice; a row left (or made) empty is dropped, so clearing deletes it."""

    start = forms.DateField(label=gettext_lazy("开始日期"), required=False)
    end = forms.DateField(label=gettext_lazy("结束日期"), required=False)
    kind = forms.ChoiceField(
        label=gettext_lazy("类型"), choices=[(HOLIDAY, gettext_lazy("放假")), (WORKDAY, gettext_lazy("调休上班"))]
    )
    name = forms.CharField(label=gettext_lazy("名称"), max_length=64, required=False)

    def clean(self):
        data = super().clean()
        if not data.get("start") and not data.get("end") and not (data.get("name") or "").strip():
            if not self.errors:
                return {}
        elif not data.get("start") and "start" not in self.errors:
            self.add_error("start", _("请填写开始日期。"))
        return data

    @property
    def row(self) -> NoticeRow | None:
        data = self.cleaned_data
        if not data:
            return None
        return NoticeRow(
            start=data["start"], end=data.get("end"), is_working_day=data["kind"] == WORKDAY, name=data["name"]
        )


NoticeFormSet = forms.formset_factory(NoticeRowForm, extra=EXTRA_ROWS, max_num=60, absolute_max=60)


def _ranges(days) -> list[dict]:
    """Consecutive days of the same kind and name, as one row each (the notice's own wording)."""
    rows: list[dict] = []
    for day, working, name, source in days:
        last = rows[-1] if rows else None
        if (
            last
            and last["is_working_day"] == working
            and last["name"] == name
            and last["end"] + dt.timedelta(days=1) == day
        ):
            last["end"] = day
            last["count"] += 1
        else:
            rows.append(
                {"start": day, "end": day, "is_working_day": working, "name": name, "source": source, "count": 1}
            )
    return rows


def platform_admin_only(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_platform_admin:
            raise PermissionDenied(_("只有平台管理员可以维护节假日安排。"))
        return view(request, *args, **kwargs)

    return wrapper


@platform_admin_only
def calendar_index(request):
    """The years covered (package and entered), and the next years that are not."""
    this_year = timezone.localdate().year
    covered = calendar.covered_years()
    entered = calendar.override_years()
    years = [
        {
            "year": year,
            "package": year in calendar.PACKAGE_YEARS,
            "entered": year in entered,
            "covered": year in covered,
        }
        for year in range(this_year + 2, this_year - 3, -1)
    ]
    return render(
        request,
        "core/calendar.html",
        {
            "years": years,
            "package_range": (calendar.PACKAGE_YEARS[0], calendar.PACKAGE_YEARS[-1]),
            "other_years": [y for y in covered if not this_year - 2 <= y <= this_year + 2 and y in entered],
            "missing_year": calendar.missing_next_year(),
        },
    )


@platform_admin_only
def calendar_year(request, year: int):
    """One year's holidays and make-up days, and the form to enter (or correct) its notice."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise Http404
    entered = [row for row in calendar.special_days(year) if row[3] == "override"]
    errors: list[str] = []
    if request.method == "POST":
        formset = NoticeFormSet(request.POST)
        if formset.is_valid():
            rows = [form.row for form in formset.forms if form.row is not None]
            try:
                saved = calendar_year_save(actor=request.user, year=year, rows=rows)
            except ValidationError as exc:
                errors = exc.messages
            else:
                messages.success(
                    request,
                    _("已保存 %(year)s 年节假日安排（%(n)s 天），未办结事项的办理期限已按新安排重新计算。")
                    % {"year": year, "n": saved},
                )
                return redirect("core:calendar_year", year=year)
    else:
        initial = [
            {
                "start": row["start"],
                "end": row["end"] if row["end"] != row["start"] else None,
                "kind": WORKDAY if row["is_working_day"] else HOLIDAY,
                "name": row["name"],
            }
            for row in _ranges(entered)
        ]
        formset = NoticeFormSet(initial=initial)
    return render(
        request,
        "core/calendar_year.html",
        {
            "year": year,
            "rows": _ranges(calendar.special_days(year)),
            "package": year in calendar.PACKAGE_YEARS,
            "covered": calendar.is_year_covered(year),
            "formset": formset,
            "errors": errors,
        },
    )
