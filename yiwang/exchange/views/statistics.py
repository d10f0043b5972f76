"""调用统计: the charts and tables of gateway use and of how providers answer requests."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import statistics
from .common import page, staff_required

SERVED_COLOUR, DENIED_COLOUR, ERROR_COLOUR, NAVY = "#198754", "#dc3545", "#fd7e14", "#0b3a7e"


class StatisticsFilterForm(forms.Form):
    date_from = forms.DateField(
        label=gettext_lazy("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=gettext_lazy("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    unit = forms.ChoiceField(label=gettext_lazy("单位"), required=False)
    side = forms.ChoiceField(label=gettext_lazy("统计口径"), required=False, choices=statistics.Side.CHOICES)

    def __init__(self, *args, units, **kwargs):
        super().__init__(*args, **kwargs)
        if len(units) > 1:
            self.fields["unit"].choices = [("", _("全部单位"))] + [(str(u.pk), u.name) for u in units]
        else:
            del self.fields["unit"]

    def clean(self):
        data = super().clean()
        try:
            data["period"] = statistics.period_clean(date_from=data.get("date_from"), date_to=data.get("date_to"))
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        data["unit_id"] = int(data["unit"]) if data.get("unit") else None
        return data


def _daily_chart(daily: list[dict]) -> dict:
    return {
        "color": [SERVED_COLOUR, DENIED_COLOUR],
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0},
        "grid": {"left": 8, "right": 16, "top": 16, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [row["day"].strftime("%m-%d") for row in daily]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {
                "name": _("成功"),
                "type": "bar",
                "stack": "calls",
                "barMaxWidth": 18,
                "data": [row["served"] for row in daily],
            },
            {
                "name": _("拒绝或失败"),
                "type": "bar",
                "stack": "calls",
                "barMaxWidth": 18,
                "data": [row["denied"] for row in daily],
            },
        ],
    }


def _ranking_chart(names: list[str], values: list[int], *, colour: str = NAVY, unit: str = "") -> dict:
    return {
        "color": [colour],
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "grid": {"left": 8, "right": 48, "top": 8, "bottom": 8, "containLabel": True},
        "xAxis": {"type": "value", "minInterval": 1, **({"max": 100} if unit == "%" else {})},
        "yAxis": {
            "type": "category",
            "data": names,
            "inverse": True,
            "axisLabel": {"width": 140, "overflow": "truncate"},
        },
        "series": [
            {
                "type": "bar",
                "name": _("调用次数") if unit != "%" else _("按期答复率"),
                "barMaxWidth": 16,
                "label": {"show": True, "position": "right", **({"formatter": "{c}%"} if unit == "%" else {})},
                "data": values,
            }
        ],
    }


@staff_required("statistics")
def statistics_page(request):
    """调用统计 for the user's scope; the filter narrows the period, the unit and the side."""
    units = statistics.unit_choices(request.user)
    form = StatisticsFilterForm(request.GET or None, units=units)
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
        figures = statistics.statistics(user=request.user)
    else:
        data = form.cleaned_data if form.is_bound else {}
        first, last = data.get("period") or statistics.period_clean()
        figures = statistics.statistics(
            user=request.user,
            date_from=first,
            date_to=last,
            unit_id=data.get("unit_id"),
            side=data.get("side") or statistics.Side.BOTH,
        )
    daily = figures["daily"]
    answered = [row for row in figures["providers"] if row["on_time_rate"] is not None]
    charts = {
        "daily": _daily_chart(daily),
        "resources": _ranking_chart(
            [r["name"] for r in figures["resources"]], [r["calls"] for r in figures["resources"]]
        ),
        "systems": _ranking_chart(
            [r["name"] for r in figures["systems"]], [r["calls"] for r in figures["systems"]], colour="#6f42c1"
        ),
        "on_time": _ranking_chart(
            [r["unit"] for r in answered[:15]],
            [r["on_time_rate"] for r in answered[:15]],
            colour=SERVED_COLOUR,
            unit="%",
        )
        if answered
        else None,
    }
    drill = {
        "days": [row["day"].isoformat() for row in daily],
        "resources": [r["code"] for r in figures["resources"]],
        "systems": [r["id"] for r in figures["systems"]],
    }
    selected = next((u for u in units if u.pk == figures["scope"]["unit"]), None)
    period = figures["period"]
    presets = []
    for days, label in ((7, _("近 7 天")), (30, _("近 30 天")), (90, _("近 90 天")), (365, _("近一年"))):
        start, end = statistics.period_clean(days=days)
        presets.append(
            {
                "label": label,
                "date_from": start.isoformat(),
                "date_to": end.isoformat(),
                "active": (start, end) == (period["from"], period["to"]),
            }
        )
    return page(
        request,
        "exchange/statistics.html",
        {
            "filter_form": form,
            "filtered": bool(request.GET),
            "figures": figures,
            "charts": charts,
            "drill": drill,
            "selected_unit": selected,
            "presets": presets,
            "own_units": units if not figures["scope"]["district"] else [],
            "active_days": sum(1 for row in daily if row["calls"]),
        },
        section="statistics",
        status=status,
    )
