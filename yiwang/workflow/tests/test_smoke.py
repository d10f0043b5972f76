from yiwang.workflow import selectors, services
from yiwang.workflow.models import Case, Task


def test_chain_end_to_end(alice, carol, bob, frank, erin, chain):
    case = services.case_start(process="test.chain", initiator=alice, title="采购电脑", fields={"amount": 200000})
    (t1,) = selectors.inbox(user=carol)
    services.task_approve(task=t1, actor=carol, comment="同意")
    tb = selectors.inbox(user=bob).get()
    tf = selectors.inbox(user=frank).get()
    services.task_approve(task=tb, actor=bob)
    case.refresh_from_db()
    assert case.step_index == 1
    services.task_approve(task=tf, actor=frank)
    case.refresh_from_db()
    assert case.step_index == 2
    te = selectors.inbox(user=erin).get()
    services.task_approve(task=te, actor=erin)
    case.refresh_from_db()
    assert case.status == Case.Status.APPROVED
    assert Task.objects.filter(status="open").count() == 0
    assert [a.kind for a in selectors.timeline(case)][:2] == ["start", "approve"]
