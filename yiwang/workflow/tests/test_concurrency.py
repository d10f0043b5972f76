"""Concurrent task actions on PostgreSQL: a step completes once, a task is acted on once.

Every action locks the case row (``select_for_update``) and then re-reads its task, so people
who act on the same step at the same moment are serialised. These tests start the actions in
threads released by one ``threading.Barrier`` (each thread has its own database connection,
closed at the end) and check the committed history afterwards.

PostgreSQL only (SQLite serialises every writer on the file lock, which would prove nothing):
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/yiwang bin/test yiwang/workflow/tests/test_concurrency.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from conftest import make_person
from yiwang.org.models import User
from yiwang.workflow import services
from yiwang.workflow.models import Action, Case, Task

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent actions need PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

N = 8  # signers / pool members acting at the same moment
TIMEOUT = 120


@pytest.fixture
def signers(units, roles):
    return [make_person(f"signer{i}", f"会签人{i}", units["fin"], roles["staff"], title="科员") for i in range(N)]


def define(code: str, first: dict, *, then: str) -> None:
    """A two-step process: ``first``, then a single step for the person ``then``."""
    services.definition_save(
        actor=None,
        code=code,
        name="并发测试",
        module="oa",
        steps=[
            {"key": "first", "name": "第一步", "time_limit": 3, **first},
            {"key": "next", "name": "第二步", "kind": "single", "assignee": {"type": "person", "usernames": [then]}},
        ],
    )


def race(jobs: list[tuple[int, int]], act: Callable[[Task, User], object]) -> list[object]:
    """Run ``act(task, actor)`` for each (task id, actor id) in its own thread, all at once.

    Each thread loads its task and actor on its own connection before the barrier, so the
    actions themselves start together. Returns what each returned or raised, in job order.
    """
    assert not connection.in_atomic_block  # the fixtures' rows are committed: other connections see them
    barrier = threading.Barrier(len(jobs), timeout=TIMEOUT)
    outcomes: list[object] = [None] * len(jobs)

    def run(slot: int, task_id: int, actor_id: int) -> None:
        try:
            task, actor = Task.objects.get(pk=task_id), User.objects.get(pk=actor_id)
            actor.acting_unit_id  # noqa: B018 - load the acting post before the race, not during it
            barrier.wait()
            outcomes[slot] = act(task, actor)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            outcomes[slot] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n, t, a)) for n, (t, a) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running (deadlock?)"
    return outcomes


def approve(task: Task, actor: User) -> Task:
    return services.task_approve(task=task, actor=actor, comment="同意")


def kinds(case: Case, kind: str, step: int | None = None) -> int:
    qs = Action.objects.filter(case=case, kind=kind)
    return qs.count() if step is None else qs.filter(step_index=step).count()


def test_countersign_all_at_once_completes_the_step_once(alice, bob, signers):
    define(
        "test.cs",
        {"kind": "countersign", "assignee": {"type": "person", "usernames": [s.username for s in signers]}},
        then="bob",
    )
    case = services.case_start(process="test.cs", initiator=alice, title="会签并发")
    tasks = list(case.tasks.filter(step_index=0).order_by("id"))
    assert len(tasks) == N and all(t.required for t in tasks)

    outcomes = race([(t.pk, t.assignee_id) for t in tasks], approve)

    assert [type(o) for o in outcomes] == [Task] * N, outcomes  # every approval went through
    case.refresh_from_db()
    assert case.status == Case.Status.RUNNING and case.step_index == 1
    assert case.step_round == 2  # step 0, then step 1: activated once each
    assert kinds(case, Action.Kind.APPROVE) == N
    assert set(Action.objects.filter(case=case, kind=Action.Kind.APPROVE).values_list("actor_id", flat=True)) == {
        s.pk for s in signers
    }
    first = case.tasks.filter(step_index=0)
    assert first.count() == N
    assert first.filter(status=Task.Status.DONE, outcome=Task.Outcome.APPROVED).count() == N
    assert kinds(case, Action.Kind.STEP_DONE) == 1
    assert kinds(case, Action.Kind.STEP_DONE, step=0) == 1
    (nxt,) = case.tasks.filter(step_index=1)  # the next step opened exactly once
    assert nxt.assignee_id == bob.pk and nxt.status == Task.Status.OPEN and nxt.round == 2


def test_same_task_twice_at_once_is_done_once(alice, carol, bob):
    define("test.single", {"kind": "single", "assignee": {"type": "initiator_leader", "rank": "principal"}}, then="bob")
    for n in range(3):  # a few rounds: each must come out the same
        case = services.case_start(process="test.single", initiator=alice, title=f"重复办理 {n}")
        (task,) = case.tasks.filter(step_index=0)
        assert task.assignee_id == carol.pk

        outcomes = race([(task.pk, carol.pk), (task.pk, carol.pk)], approve)

        done = [o for o in outcomes if isinstance(o, Task)]
        refused = [o for o in outcomes if isinstance(o, ValidationError)]
        assert len(done) == 1 and len(refused) == 1, outcomes
        assert "已办理" in refused[0].messages[0]
        case.refresh_from_db()
        assert case.step_index == 1 and case.step_round == 2
        assert kinds(case, Action.Kind.APPROVE) == 1
        assert kinds(case, Action.Kind.STEP_DONE) == 1
        task.refresh_from_db()
        assert task.status == Task.Status.DONE and task.acted_by_id == carol.pk
        assert list(case.tasks.filter(step_index=1).values_list("assignee_id", flat=True)) == [bob.pk]


def test_any_one_pool_all_at_once_completes_the_step_once(alice, bob, signers):
    define(
        "test.pool",
        {"kind": "any_one", "assignee": {"type": "person", "usernames": [s.username for s in signers]}},
        then="bob",
    )
    case = services.case_start(process="test.pool", initiator=alice, title="或签并发")
    tasks = list(case.tasks.filter(step_index=0).order_by("id"))
    assert len(tasks) == N and not any(t.required for t in tasks)

    outcomes = race([(t.pk, t.assignee_id) for t in tasks], approve)

    done = [o for o in outcomes if isinstance(o, Task)]
    refused = [o for o in outcomes if isinstance(o, ValidationError)]
    assert len(done) == 1 and len(refused) == N - 1, outcomes  # nothing else (no deadlock, no IntegrityError)
    assert all("已办理或已取消" in error.messages[0] for error in refused), refused
    case.refresh_from_db()
    assert case.step_index == 1 and case.step_round == 2
    assert kinds(case, Action.Kind.APPROVE) == 1
    assert kinds(case, Action.Kind.STEP_DONE) == 1
    first = case.tasks.filter(step_index=0)
    winner = first.get(status=Task.Status.DONE)
    assert winner.pk == done[0].pk and winner.outcome == Task.Outcome.APPROVED
    assert first.filter(status=Task.Status.CANCELLED).count() == N - 1
    assert list(case.tasks.filter(step_index=1).values_list("assignee_id", flat=True)) == [bob.pk]
