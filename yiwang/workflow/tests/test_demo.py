"""``manage.py demo_data`` builds the demo district, processes and cases, and can run twice."""

import pytest
from django.core.management import call_command

from yiwang.org.models import User
from yiwang.workflow import clock, selectors
from yiwang.workflow.models import Case, ProcessDefinition


@pytest.mark.django_db
def test_demo_data_is_idempotent_and_fills_the_inboxes():
    call_command("demo_data", stdout=open("/dev/null", "w"))
    cases = Case.objects.count()
    # the three demo processes; modules add their own internal ones (e.g. exchange.access)
    assert ProcessDefinition.objects.filter(status="active", internal=False).count() == 3
    call_command("demo_data", stdout=open("/dev/null", "w"))
    assert Case.objects.count() == cases >= 6
    edu_head = User.objects.get(username="edu_head")
    inbox = list(selectors.inbox(user=edu_head))
    assert len(inbox) >= 2
    assert {t.due_state() for t in inbox} >= {clock.ON_TIME}
    # the backdated request is overdue for the education bureau's leaders
    assert selectors.inbox(user=edu_head, due=clock.OVERDUE).exists()
    assert Case.objects.filter(status=Case.Status.APPROVED).exists()
