"""Reads of the workflow engine: the inbox, the done list, cases and their timelines."""

from __future__ import annotations

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery

from yiwang.core.permissions import can_see_unit, scope
from yiwang.org.models import User

from . import clock
from .models import Action, Attachment, Case, ProcessDefinition, Task
from .services import delegating_principal_ids


def _mine(user: User) -> Q:
    """Tasks the user may act on: their own, delegated to them for one task, or via org delegation."""
    return Q(assignee_id__in=[user.pk, *delegating_principal_ids(user)]) | Q(delegate_id=user.pk)


def inbox(*, user: User, module: str = "", due: str = "", q: str = "") -> QuerySet[Task]:
    """Open tasks of ``user`` across modules (待办), earliest deadline first."""
    qs = Task.objects.filter(_mine(user), status=Task.Status.OPEN)
    if module:
        qs = qs.filter(module=module)
    if due:
        today = clock.today()
        threshold = clock.soon_threshold(today)
        if due == clock.OVERDUE:
            qs = qs.filter(due_date__lt=today)
        elif due == clock.DUE_SOON:
            qs = qs.filter(due_date__gte=today, due_date__lte=threshold)
        elif due == clock.ON_TIME:
            qs = qs.filter(Q(due_date__gt=threshold) | Q(due_date__isnull=True))
    if q:
        qs = qs.filter(title__icontains=q.strip())
    # Tasks without a time limit last, on both databases. People are fetched for the rows of
    # the page only (a join would run for every open task before the sort; see bench/).
    people = User.objects.only("id", "username", "full_name")
    return (
        qs.select_related("case")
        .defer("case__fields")
        .prefetch_related(
            Prefetch("sender", queryset=people),
            Prefetch("assignee", queryset=people),
            Prefetch("delegate", queryset=people),
        )
        .order_by(F("due_date").asc(nulls_last=True), "created_at", "id")
    )


def inbox_count(user: User) -> int:
    """The count badge in the top bar."""
    if not getattr(user, "is_authenticated", False):
        return 0
    return Task.objects.filter(_mine(user), status=Task.Status.OPEN).count()


def done_list(*, user: User, module: str = "", q: str = "") -> QuerySet[Task]:
    """Tasks the user has acted on (已办), latest first."""
    qs = Task.objects.filter(acted_by=user, status=Task.Status.DONE)
    if module:
        qs = qs.filter(module=module)
    if q:
        qs = qs.filter(title__icontains=q.strip())
    return qs.select_related("case", "sender", "assignee").order_by("-acted_at", "-id")


def can_view_case(case: Case, user: User) -> bool:
    """Initiator, any participant (or someone acting for one), or a user whose scope covers the unit."""
    if not getattr(user, "is_authenticated", False):
        return False
    if case.initiator_id == user.pk or can_see_unit(user, case.unit_id):
        return True
    if case.lead_unit_id and can_see_unit(user, case.lead_unit_id):
        return True
    return case.tasks.filter(_mine(user) | Q(acted_by=user)).exists()


def case_list(*, user: User, module: str = "", status: str = "", q: str = "", mine: bool = False) -> QuerySet[Case]:
    """Cases the user may see: those of units in scope, plus those they started or took part in."""
    # The same rule as can_view_case: scope of the unit or the lead unit, initiator, participants.
    participated = Task.objects.filter(case=OuterRef("pk")).filter(_mine(user) | Q(acted_by=user))
    in_scope = scope(Case.objects.all(), user).values("pk")
    lead_in_scope = scope(Case.objects.filter(lead_unit__isnull=False), user, unit_field="lead_unit").values("pk")
    qs = Case.objects.filter(Q(pk__in=in_scope) | Q(pk__in=lead_in_scope) | Q(initiator=user) | Exists(participated))
    if mine:
        qs = Case.objects.filter(initiator=user)
    if module:
        qs = qs.filter(module=module)
    if status:
        qs = qs.filter(status=status)
    if q:
        qs = qs.filter(title__icontains=q.strip())
    return qs.select_related("definition", "initiator", "unit").order_by("-started_at", "-id")


def case_get(*, user: User, pk: int) -> Case | None:
    case = Case.objects.select_related("definition", "initiator", "unit", "lead_unit").filter(pk=pk).first()
    return case if case is not None and can_view_case(case, user) else None


def case_for(subject) -> Case | None:
    """The latest case started on a module's object (for embedding its timeline)."""
    from django.contrib.contenttypes.models import ContentType

    return (
        Case.objects.filter(content_type=ContentType.objects.get_for_model(subject), object_id=str(subject.pk))
        .select_related("definition", "initiator", "unit")
        .order_by("-started_at", "-id")
        .first()
    )


def timeline(case: Case) -> QuerySet[Action]:
    """The case history with attachments, oldest first."""
    return case.actions.select_related("actor", "on_behalf_of").prefetch_related("attachments__stored")


def open_tasks(case: Case) -> QuerySet[Task]:
    return case.tasks.filter(status=Task.Status.OPEN).select_related("assignee", "delegate")


def my_open_tasks(case: Case, user: User) -> list[Task]:
    """The open tasks of this case ``user`` may act on (usually one)."""
    return list(case.tasks.filter(_mine(user), status=Task.Status.OPEN).select_related("assignee"))


def steps_progress(case: Case) -> list[dict]:
    """Each step of the case's definition with its state, for the progress strip."""
    reached = {}
    for index, status in case.tasks.filter(step_index__gte=0).values_list("step_index", "status"):
        reached.setdefault(index, set()).add(status)
    from .schema import condition_holds

    out = []
    for index, step in enumerate(case.definition.steps):
        if case.step_index == index and case.is_running:
            state = "current"
        elif index in reached:
            state = "done"
        elif not condition_holds(step.get("condition"), case.fields):
            state = "skipped"
        else:
            state = "pending"
        out.append({"index": index, "name": step["name"], "kind": step["kind"], "state": state})
    return out


def definition_list(*, q: str = "", module: str = "") -> QuerySet[ProcessDefinition]:
    """The newest version of every process."""
    newest = ProcessDefinition.objects.filter(code=OuterRef("code")).order_by("-version").values("pk")[:1]
    qs = ProcessDefinition.objects.filter(pk=Subquery(newest))
    if module:
        qs = qs.filter(module=module)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(code__icontains=q))
    return qs.order_by("module", "code")


def definition_versions(code: str) -> QuerySet[ProcessDefinition]:
    return ProcessDefinition.objects.filter(code=code).order_by("-version")


def tasks_prefetch() -> Prefetch:
    return Prefetch("tasks", queryset=Task.objects.select_related("assignee").order_by("id"))


def attachment_visible(user: User, stored) -> bool:
    """A workflow file (a ``core.Attachment``) is for whoever may view its case."""
    link = Attachment.objects.filter(stored=stored).only("case_id").first()
    return link is not None and case_get(user=user, pk=link.case_id) is not None
