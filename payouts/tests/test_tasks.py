"""The beat jobs: written to django-celery-beat, and the weekly run executed by a real Celery worker."""

import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from payouts.models import Payout
from payouts.tasks import payout_run_due_task
from payouts.tests.conftest import at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory


@pytest.mark.django_db
def test_setup_schedules_writes_the_weekly_and_monthly_runs_as_utc_crontabs():
    call_command("setup_schedules", stdout=open("/dev/null", "w"))
    weekly = PeriodicTask.objects.get(task="payouts.run_due", kwargs=json.dumps({"schedule": "weekly"}))
    monthly = PeriodicTask.objects.get(task="payouts.run_due", kwargs=json.dumps({"schedule": "monthly"}))
    assert (weekly.crontab.day_of_week, weekly.crontab.hour, str(weekly.crontab.timezone)) == ("1", "6", "UTC")
    assert (monthly.crontab.day_of_month, monthly.crontab.hour) == ("1", "7")
    assert PeriodicTask.objects.filter(task="payouts.sweep_stuck", interval__isnull=False).exists()


@pytest.mark.slow
def test_the_weekly_job_on_a_worker_pays_the_period(celery_worker, connected_listener, fund_platform):
    # given a listener who earned 27.00 in week 45
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))

    # when beat's job for week 45 runs on the payouts queue
    result = payout_run_due_task.delay("weekly", "2026-W45").get(timeout=60)

    # then the listener is paid
    assert result == {"period": "2026-W45", "paid": 1, "failed": 0, "deferred": 0, "in_flight": 0, "held": {}}
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert Payout.objects.get(listener=listener).status == Payout.Status.PAID
