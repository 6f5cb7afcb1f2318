import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from workers.celery import app
from workers.schedules import SCHEDULES

pytestmark = pytest.mark.django_db


def test_every_scheduled_job_names_a_task_the_worker_knows():
    app.loader.import_default_modules()
    unknown = {task for task, _, _ in SCHEDULES.values() if task not in app.tasks}
    assert unknown == set()


def test_setup_schedules_writes_every_job_once_and_keeps_an_operators_pause(capsys):
    call_command("setup_schedules")
    weekly = PeriodicTask.objects.get(name="Pay listeners weekly (last ISO week)")
    assert (weekly.task, json.loads(weekly.kwargs)) == ("payouts.run_due", {"schedule": "weekly"})
    assert (weekly.crontab.day_of_week, weekly.crontab.hour, str(weekly.crontab.timezone)) == ("1", "6", "UTC")
    weekly.enabled = False
    weekly.save()

    call_command("setup_schedules")

    assert PeriodicTask.objects.filter(name__in=SCHEDULES).count() == len(SCHEDULES)
    assert PeriodicTask.objects.get(name="Pay listeners weekly (last ISO week)").enabled is False


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("billing.payment_intent_create", "stripe"),
        ("billing.refund_create", "stripe"),
        ("billing.payment_intent_cancel", "stripe"),
        ("billing.payment_intents_sweep", "payments"),
        ("billing.webhook_process", "webhooks"),
        ("payouts.run_due", "payouts"),
        ("billing.payment_reconcile", "payments"),
        ("billing.clawback_execute", "stripe"),
        ("billing.clawbacks_sweep", "maintenance"),
    ],
)
def test_tasks_are_routed_to_their_named_queue(task, queue):
    route = app.amqp.router.route({}, task)
    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue
