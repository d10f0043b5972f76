"""Workflow fixtures: more people around alice, and a few processes built with the services."""

from __future__ import annotations

import pytest

from conftest import make_person
from yiwang.workflow import services


@pytest.fixture
def dave(units, roles):
    """Deputy leader of 区教育局."""
    return make_person("dave", "张伟", units["edu"], roles["leader"], title="副局长", leader_rank="deputy")


@pytest.fixture
def erin(units, roles):
    """Leader of 区财政局."""
    return make_person("erin", "刘敏", units["fin"], roles["leader"], title="局长", leader_rank="principal")


@pytest.fixture
def frank(units, roles):
    """Another staff member of 区财政局."""
    return make_person("frank", "赵刚", units["fin"], roles["staff"], title="科员")


def save(code="test.simple", steps=None, *, limit=None, name="测试流程", module="oa"):
    return services.definition_save(actor=None, code=code, name=name, module=module, steps=steps, case_time_limit=limit)


@pytest.fixture
def simple(carol):
    """One step: the initiator's principal leader approves within 3 working days."""
    return save(
        steps=[
            {
                "key": "sign",
                "name": "局长审批",
                "kind": "single",
                "assignee": {"type": "initiator_leader", "rank": "principal"},
                "time_limit": 3,
            }
        ],
        limit=10,
    )


@pytest.fixture
def chain(carol, bob, erin, frank):
    """Leader → countersign by bob and frank (财政) → conditional erin when amount > 100000."""
    return save(
        code="test.chain",
        steps=[
            {
                "key": "leader",
                "name": "局长审核",
                "kind": "single",
                "assignee": {"type": "initiator_leader", "rank": "principal"},
                "time_limit": 2,
            },
            {
                "key": "finance",
                "name": "财政会签",
                "kind": "countersign",
                "assignee": {"type": "person", "usernames": ["bob", "frank"]},
                "time_limit": 3,
            },
            {
                "key": "big",
                "name": "财政局长审批",
                "kind": "single",
                "assignee": {"type": "role", "unit": "FIN", "role": "leader"},
                "condition": {"field": "amount", "op": "gt", "value": 100000},
            },
        ],
        limit=15,
    )
