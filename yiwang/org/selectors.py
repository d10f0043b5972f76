"""Reads of org, always through the one permission helper."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from yiwang.core.permissions import scope
from yiwang.core.search import search

from .models import ApiKey, ConsumerSystem, Delegation, Post, Unit, User


def unit_list(
    *, user: User, q: str = "", kind: str = "", status: str = "", parent: int | None = None
) -> QuerySet[Unit]:
    """Units the user may see, filtered; search by name/short name/code."""
    qs = scope(Unit.objects.select_related("parent"), user, unit_field="pk")
    if q:
        qs = search(qs, q)
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    if parent:
        qs = qs.filter(parent_id=parent)
    return qs.order_by("path")


def person_list(
    *, user: User, q: str = "", unit: int | None = None, role: str = "", active: str = ""
) -> QuerySet[User]:
    """People holding a post in a unit the user may see (service accounts excluded)."""
    # id IN (subquery) rather than a join + DISTINCT: counting 10,000 people stays an index scan.
    visible_posts = scope(Post.objects.filter(active=True), user)
    if unit:
        visible_posts = visible_posts.filter(unit_id=unit)
    if role:
        visible_posts = visible_posts.filter(role__code=role)
    qs = User.objects.filter(is_system=False, id__in=visible_posts.values("user_id"))
    if q:
        qs = search(qs, q)
    if active in ("1", "0"):
        qs = qs.filter(is_active=active == "1")
    active_posts = Post.objects.filter(active=True).select_related("unit", "role").order_by("-is_primary", "id")
    return qs.prefetch_related(Prefetch("posts", queryset=active_posts, to_attr="active_posts")).order_by("id")


def system_list(*, user: User) -> QuerySet[ConsumerSystem]:
    return scope(ConsumerSystem.objects.select_related("unit"), user).prefetch_related("keys").order_by("id")


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return scope(ApiKey.objects.select_related("system", "system__unit"), user, unit_field="system__unit")


def delegation_list(*, user: User) -> QuerySet[Delegation]:
    """Delegations the user gave or received."""
    return Delegation.objects.filter(Q(principal=user) | Q(delegate=user)).select_related("principal", "delegate")


def leaders_of(*, unit: Unit, rank: str = "") -> QuerySet[User]:
    """People holding a leader post in ``unit`` (optionally of one rank: deputy/principal)."""
    posts = Post.objects.filter(unit=unit, active=True).exclude(leader_rank="")
    if rank:
        posts = posts.filter(leader_rank=rank)
    return User.objects.filter(posts__in=posts, is_active=True).distinct()
