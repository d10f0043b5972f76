"""What every exchange page shares: the module's tabs and who may do what."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

TABS = [
    ("catalog", _("资源目录"), "journal-text", "exchange:catalog"),
    ("registries", _("基础库"), "database", "exchange:registries"),
    ("requests", _("共享申请"), "key", "exchange:requests"),
    ("grants", _("共享授权"), "shield-check", "exchange:grants"),
    ("disputes", _("疑义校核"), "exclamation-diamond", "exchange:disputes"),
    ("subscriptions", _("订阅"), "rss", "exchange:subscriptions"),
    ("matching", _("免于重复采集"), "ui-checks", "exchange:matching"),
    ("statistics", _("调用统计"), "bar-chart", "exchange:statistics"),
    ("evidence", _("调用记录"), "clipboard-data", "exchange:evidence"),
]


def _tabs() -> list[tuple]:
    tabs = []
    for code, label, icon, url_name in TABS:
        try:
            reverse(url_name)
        except NoReverseMatch:
            continue
        tabs.append((code, label, icon, url_name))
    return tabs


def page(request, template: str, context: dict, *, section: str, status: int = 200):
    """Render an exchange page with the module tabs, ``section`` marking the current one."""
    context = {**context, "exc_section": section, "exchange_tabs": _tabs()}
    return render(request, template, context, status=status)
