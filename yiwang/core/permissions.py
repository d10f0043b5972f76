"""The one permission helper: scope any queryset to what a user may see.

The rule lives on the user (``User.visible_unit_ids``, from org): everything for a
platform-wide role, the unit subtree for leaders and unit admins, the acting unit for staff.
Every list view and every API viewset goes through ``scope``; none filters by hand.
"""

from __future__ import annotations

from django.db.models import QuerySet

ALL = None  # visible_unit_ids() returns ALL for "every unit"


def scope(queryset: QuerySet, user, *, unit_field: str = "unit") -> QuerySet:
    """Return ``queryset`` limited to the records whose ``unit_field`` the user may see."""
    if user is None or not getattr(user, "is_authenticated", False):
        return queryset.none()
    unit_ids = user.visible_unit_ids()
    if unit_ids is ALL:
        return queryset
    return (
        queryset.filter(**{f"{unit_field}__in": unit_ids}).distinct()
        if "__" in unit_field
        else queryset.filter(**{f"{unit_field}__in": unit_ids})
    )


def can_see_unit(user, unit_id: int | None) -> bool:
    """Whether a single record of ``unit_id`` is visible to the user."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    unit_ids = user.visible_unit_ids()
    return unit_ids is ALL or unit_id in unit_ids
