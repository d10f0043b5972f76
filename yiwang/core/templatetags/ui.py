"""Template helpers of the UI shell: Bootstrap classes on form widgets, badges, pagination.

Load with ``{% load ui %}``. Styling only: no behaviour and no inline styles (the
Content-Security-Policy forbids them), so everything here returns class names or markup
built by Django's own widget templates.
"""

from __future__ import annotations

from django import template
from django.forms.boundfield import BoundField, BoundWidget

register = template.Library()

# Widgets (class name lower-cased) and the Bootstrap class their <input>/<select> takes.
_CHECK_WIDGETS = {"checkboxinput", "radioselect", "checkboxselectmultiple"}
_SELECT_WIDGETS = {"select", "selectmultiple", "nullbooleanselect", "selectdatewidget"}

_BADGE_CLASSES = {
    "active": "success",
    "正常": "success",
    "enabled": "success",
    "启用": "success",
    "merged": "secondary",
    "已合并": "secondary",
    "abolished": "dark",
    "已撤销": "dark",
    "revoked": "danger",
    "已吊销": "danger",
    "expired": "warning",
    "已过期": "warning",
    "pending": "warning",
    "待处理": "warning",
}


def _merge_classes(*parts: str) -> str:
    seen: list[str] = []
    for part in parts:
        for name in (part or "").split():
            if name not in seen:
                seen.append(name)
    return " ".join(seen)


@register.filter
def widget_type(bound_field) -> str:
    """The widget's class name lower-cased: "select", "checkboxinput", "textarea", ..."""
    if not isinstance(bound_field, BoundField):
        return ""
    return bound_field.field.widget.__class__.__name__.lower()


@register.filter
def widget_class(bound_field) -> str:
    """The Bootstrap class for this field's widget, plus ``is-invalid`` when it has errors."""
    if not isinstance(bound_field, BoundField):
        return ""
    kind = widget_type(bound_field)
    if kind in _CHECK_WIDGETS:
        css = "form-check-input"
    elif kind in _SELECT_WIDGETS:
        css = "form-select"
    elif kind == "colorinput":
        css = "form-control form-control-color"
    else:
        css = "form-control"
    if bound_field.errors:
        css += " is-invalid"
    return css


@register.filter
def add_class(bound_field, css: str):
    """Render the field's widget with ``css`` added to any class the widget already has."""
    if not isinstance(bound_field, BoundField):
        return bound_field
    existing = bound_field.field.widget.attrs.get("class", "")
    return bound_field.as_widget(attrs={"class": _merge_classes(existing, css)})


@register.filter
def choice_widgets(bound_field, css: str = ""):
    """The options of a RadioSelect / CheckboxSelectMultiple, each input carrying ``css``.

    Each item has ``.tag`` (the <input>), ``.id_for_label`` and ``.choice_label``.
    """
    if not isinstance(bound_field, BoundField):
        return []
    widget = bound_field.field.widget
    id_ = widget.attrs.get("id") or bound_field.auto_id
    attrs = {"id": id_} if id_ else {}
    attrs = bound_field.build_widget_attrs(attrs)
    if css:
        attrs["class"] = _merge_classes(widget.attrs.get("class", ""), css)
    return [
        BoundWidget(widget, option, bound_field.form.renderer)
        for option in widget.subwidgets(bound_field.html_name, bound_field.value(), attrs=attrs)
    ]


def _badge(value) -> str:
    key = str(getattr(value, "value", value) if value is not None else "").strip()
    return "text-bg-" + _BADGE_CLASSES.get(key, _BADGE_CLASSES.get(key.lower(), "secondary"))


@register.simple_tag
def badge_class(value) -> str:
    """``{% badge_class unit.status %}`` -> "text-bg-success" etc. for a status word."""
    return _badge(value)


register.filter("badge_class", _badge)


@register.filter
def get_item(mapping, key):
    """``{{ some_dict|get_item:key }}``: a dict look-up with a variable key (None if absent)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def is_current(path: str, url) -> bool:
    """Whether the navigation entry ``url`` is the current page or an ancestor of it."""
    if not url or not path:
        return False
    url = str(url)
    if path == url:
        return True
    return url != "/" and url.endswith("/") and path.startswith(url)


@register.simple_tag
def elided_pages(page_obj, on_each_side: int = 2, on_ends: int = 1) -> list:
    """Page numbers around the current page; None stands for a gap ("…")."""
    paginator = page_obj.paginator
    return [
        number if isinstance(number, int) else None
        for number in paginator.get_elided_page_range(page_obj.number, on_each_side=on_each_side, on_ends=on_ends)
    ]
