"""The shape of a process definition's steps, its validation, conditions and assignee rules.

A step is a dict::

    {"key": "review", "name": "科室审核", "kind": "single" | "countersign" | "any_one",
     "assignee": {"type": "person", "usernames": ["zhang"]}
               | {"type": "role", "role": "leader", "unit": "BL-EDU"}
               | {"type": "initiator_leader", "rank": "" | "deputy" | "principal"}
               | {"type": "lead_unit", "role": "staff", "rank": ""},
     "time_limit": 3,                                       # working days, optional
     "condition": {"field": "amount", "op": "gt", "value": 100000}}   # optional

A definition is refused when it is saved if a step is malformed or a fixed assignee rule
(a person, a role in a named unit) resolves to nobody; rules that depend on the case
(initiator's leader, lead unit) are resolved when a case starts, and a start that would get
stuck is refused then.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yiwang.org.models import Post, Role, Unit, User

FORMAT = "yiwang.workflow/1"

STEP_KINDS = {
    "single": gettext_lazy("单人审批"),
    "countersign": gettext_lazy("会签（全部同意）"),
    "any_one": gettext_lazy("或签（一人同意即可）"),
}
RULE_TYPES = {
    "person": gettext_lazy("指定人员"),
    "role": gettext_lazy("指定单位的角色"),
    "initiator_leader": gettext_lazy("发起人所在单位领导"),
    "lead_unit": gettext_lazy("主办单位人员"),
}
RANKS = {"": gettext_lazy("全部领导"), "deputy": gettext_lazy("分管领导"), "principal": gettext_lazy("主要领导")}
CONDITION_OPS = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": gettext_lazy("属于"),
    "contains": gettext_lazy("包含"),
}
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_STEPS = 30
MAX_TIME_LIMIT = 365


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


# --- conditions -----------------------------------------------------------------------


def condition_holds(condition: dict | None, fields: dict) -> bool:
    """Whether a step's condition holds for a case's fields (no condition: always)."""
    if not condition:
        return True
    op, expected = condition["op"], condition.get("value")
    actual = fields.get(condition["field"])
    if op in ("gt", "gte", "lt", "lte"):
        left, right = _number(actual), _number(expected)
        if left is None or right is None:
            return False
        return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
    if op in ("eq", "ne"):
        left, right = _number(actual), _number(expected)
        equal = left == right if left is not None and right is not None else str(actual) == str(expected)
        return equal if op == "eq" else not equal
    if op == "in":
        options = expected if isinstance(expected, list) else [v.strip() for v in str(expected).split(",")]
        return str(actual) in {str(v) for v in options}
    if op == "contains":
        return actual is not None and str(expected) in (actual if isinstance(actual, list) else str(actual))
    return False


def describe_condition(condition: dict | None) -> str:
    if not condition:
        return ""
    return f"{condition['field']} {CONDITION_OPS.get(condition['op'], condition['op'])} {condition.get('value')}"


# --- assignee rules ---------------------------------------------------------------------


def _active_people() -> Q:
    return Q(is_active=True, is_system=False)


def _people_in(unit: Unit, *, role: str = "", rank: str = "") -> list[User]:
    posts = Post.objects.filter(unit=unit, active=True)
    if role:
        posts = posts.filter(role__code=role)
    if rank:
        posts = posts.filter(leader_rank=rank)
    elif not role:
        posts = posts.exclude(leader_rank="")  # no role, no rank: the unit's leaders
    return list(User.objects.filter(_active_people(), posts__in=posts).distinct().order_by("id"))


def _leaders_up(unit: Unit | None, rank: str, *, role: str = "", exclude: User | None = None) -> list[User]:
    """Leaders (or holders of ``role``) of ``unit``; an office (科室) without one goes up to its parent.

    The initiator is never their own approver: a leader's request goes to the other
    leaders of the unit, or up the tree.
    """
    while unit is not None:
        people = [p for p in _people_in(unit, role=role, rank=rank) if exclude is None or p.pk != exclude.pk]
        if people:
            return people
        unit = unit.parent
    return []


def resolve(rule: dict, *, unit: Unit | None, lead_unit: Unit | None, initiator: User | None = None) -> list[User]:
    """The people an assignee rule names for a case started in ``unit`` (lead unit optional)."""
    kind = rule.get("type")
    if kind == "person":
        return list(User.objects.filter(_active_people(), username__in=rule.get("usernames") or []).order_by("id"))
    if kind == "role":
        target = Unit.objects.filter(code=rule.get("unit"), status=Unit.Status.ACTIVE).first()
        return _people_in(target, role=rule.get("role", "")) if target else []
    if kind == "initiator_leader":
        return _leaders_up(unit, rule.get("rank", ""), exclude=initiator)
    if kind == "lead_unit":
        return _leaders_up(lead_unit or unit, rule.get("rank", ""), role=rule.get("role", ""), exclude=initiator)
    return []


def describe_rule(rule: dict) -> str:
    kind = rule.get("type")
    if kind == "person":
        names = dict(User.objects.filter(username__in=rule.get("usernames") or []).values_list("username", "full_name"))
        return "、".join(names.get(u) or u for u in rule.get("usernames") or [])
    if kind == "role":
        unit = Unit.objects.filter(code=rule.get("unit")).values_list("name", flat=True).first() or rule.get("unit")
        role = Role.objects.filter(code=rule.get("role")).values_list("name", flat=True).first() or rule.get("role")
        return f"{unit} · {role}"
    if kind == "initiator_leader":
        return _("%(rule)s（%(who)s）") % {"rule": RULE_TYPES[kind], "who": RANKS.get(rule.get("rank", ""), "")}
    if kind == "lead_unit":
        role = Role.objects.filter(code=rule.get("role")).values_list("name", flat=True).first()
        return _("%(rule)s（%(who)s）") % {"rule": RULE_TYPES[kind], "who": role or RANKS.get(rule.get("rank", ""), "")}
    return "?"


# --- validation ----------------------------------------------------------------------


_WRONG_TYPE = "?"  # stands in for a non-string where a string belongs: never a valid choice


def _text(value: Any) -> str:
    """A JSON value that must be a string: None is "", any other type is invalid."""
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else _WRONG_TYPE


def _step_label(index: int, step: dict) -> str:
    name = step.get("name") if isinstance(step, dict) else ""
    return _("第 %(n)s 步“%(name)s”") % {"n": index + 1, "name": name or "?"}


def validate_steps(steps: Any) -> list[dict]:
    """Check and normalise a definition's steps; raise ValidationError naming each problem."""
    if not isinstance(steps, list) or not steps:
        raise ValidationError({"steps": _("流程至少需要一个环节。")})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": _("环节不能超过 %(n)s 个。") % {"n": MAX_STEPS}})
    errors: list[str] = []
    clean: list[dict] = []
    keys: set[str] = set()
    role_codes = set(Role.objects.values_list("code", flat=True))
    for index, step in enumerate(steps):
        label = _step_label(index, step)
        if not isinstance(step, dict):
            errors.append(_("%(step)s：格式错误。") % {"step": label})
            continue
        key = _text(step.get("key")) or f"step{index + 1}"
        name = step["name"].strip() if isinstance(step.get("name"), str) else ""
        kind = _text(step.get("kind")) or "single"
        if not _KEY.match(key):
            errors.append(_("%(step)s：环节代码只能用小写字母、数字和下划线，并以字母开头。") % {"step": label})
        elif key in keys:
            errors.append(_("%(step)s：环节代码 %(key)s 重复。") % {"step": label, "key": key})
        keys.add(key)
        if not name or len(name) > 100:
            errors.append(_("%(step)s：请填写环节名称（不超过 100 字）。") % {"step": label})
        if kind not in STEP_KINDS:
            errors.append(_("%(step)s：未知的审批方式 %(kind)s。") % {"step": label, "kind": kind})
        time_limit = step.get("time_limit")
        if time_limit in ("", None):
            time_limit = None
        else:
            try:
                time_limit = int(time_limit)
            except (TypeError, ValueError):
                time_limit = -1
            if not 0 < time_limit <= MAX_TIME_LIMIT:
                errors.append(_("%(step)s：时限应为 1–365 个工作日。") % {"step": label})
        rule = _validate_rule(step.get("assignee"), label, role_codes, errors)
        condition = _validate_condition(step.get("condition"), label, errors)
        out = {"key": key, "name": name, "kind": kind, "assignee": rule, "time_limit": time_limit}
        if condition:
            out["condition"] = condition
        clean.append(out)
    if errors:
        raise ValidationError({"steps": errors})
    return clean


def _validate_rule(rule: Any, label: str, role_codes: set[str], errors: list[str]) -> dict:
    if not isinstance(rule, dict) or _text(rule.get("type")) not in RULE_TYPES:
        errors.append(_("%(step)s：请选择办理人规则。") % {"step": label})
        return {}
    kind = rule["type"]
    if kind == "person":
        usernames = rule.get("usernames")
        if not isinstance(usernames, str | list):
            usernames = []
        if isinstance(usernames, str):
            usernames = usernames.replace("，", ",").replace("、", ",").split(",")
        usernames = [str(u).strip() for u in usernames or [] if str(u).strip()]
        if not usernames:
            errors.append(_("%(step)s：请指定办理人。") % {"step": label})
            return {}
        found = set(User.objects.filter(_active_people(), username__in=usernames).values_list("username", flat=True))
        missing = [u for u in usernames if u not in found]
        if missing:
            errors.append(_("%(step)s：找不到在岗人员 %(names)s。") % {"step": label, "names": "、".join(missing)})
        return {"type": kind, "usernames": list(dict.fromkeys(usernames))}
    rank = _text(rule.get("rank"))
    role = _text(rule.get("role"))
    if rank not in RANKS:
        errors.append(_("%(step)s：未知的领导类别。") % {"step": label})
    if role and role not in role_codes:
        errors.append(_("%(step)s：未知的角色 %(role)s。") % {"step": label, "role": role})
    if kind == "role":
        unit_code = _text(rule.get("unit"))
        if not role or not unit_code:
            errors.append(_("%(step)s：请选择单位和角色。") % {"step": label})
        elif role in role_codes:
            unit = Unit.objects.filter(code=unit_code, status=Unit.Status.ACTIVE).first()
            if unit is None:
                errors.append(_("%(step)s：单位 %(unit)s 不存在或已撤并。") % {"step": label, "unit": unit_code})
            elif not _people_in(unit, role=role):
                errors.append(
                    _("%(step)s：%(unit)s 没有担任该角色的在岗人员，流程会无人办理。")
                    % {"step": label, "unit": unit.name}
                )
        return {"type": kind, "unit": unit_code, "role": role}
    if kind == "initiator_leader":
        return {"type": kind, "rank": rank}
    return {"type": kind, "role": role, "rank": rank}


def _validate_condition(condition: Any, label: str, errors: list[str]) -> dict | None:
    if not condition:
        return None
    if not isinstance(condition, dict):
        errors.append(_("%(step)s：条件格式错误。") % {"step": label})
        return None
    field, op, value = _text(condition.get("field")), _text(condition.get("op")), condition.get("value")
    if isinstance(value, dict | list) and op != "in":
        errors.append(_("%(step)s：条件值必须是文字或数字。") % {"step": label})
        return None
    if not field and op in (None, "") and value in (None, ""):
        return None
    if not _FIELD.match(field):
        errors.append(_("%(step)s：条件字段名只能用字母、数字和下划线。") % {"step": label})
    if op not in CONDITION_OPS:
        errors.append(_("%(step)s：未知的条件运算 %(op)s。") % {"step": label, "op": op})
    elif op in ("gt", "gte", "lt", "lte") and _number(value) is None:
        errors.append(_("%(step)s：比较大小的条件值必须是数字。") % {"step": label})
    if value in (None, ""):
        errors.append(_("%(step)s：请填写条件值。") % {"step": label})
    return {"field": field, "op": op, "value": value}
