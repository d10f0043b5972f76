"""What the engine tells the modules. Every signal is sent with ``sender=Case``.

Receivers run inside the engine's transaction, so a module can update its own object in
step with the case; anything that leaves the database (SMS, webhooks) belongs in
``transaction.on_commit``. Filter on ``case.module`` / ``case.definition.code``, e.g.::

    @receiver(case_finished)
    def _document_signed(sender, case, outcome, **kwargs):
        if case.module == "oa": ...
"""

from django.dispatch import Signal

case_started = Signal()  # case
task_created = Signal()  # case, task
step_completed = Signal()  # case, step_index, step
case_returned = Signal()  # case, to_step, actor
case_finished = Signal()  # case, outcome ("approved" | "rejected" | "withdrawn" | "cancelled")
task_due_soon = Signal()  # case, task
task_overdue = Signal()  # case, task
case_overdue = Signal()  # case
