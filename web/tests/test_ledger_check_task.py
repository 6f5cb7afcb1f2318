"""The daily ledger check (beat job `web.ledger_check`): run by a real worker, its results recorded for
the metrics and the log, and the operators mailed when it fails."""

import json
import logging

import pytest
from django.core import mail
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from billing.models import Payment
from billing.tests.factories import PaymentFactory
from web.tasks import ledger_check_task
from workers.health import _client


@pytest.fixture(autouse=True)
def _no_sent_markers():
    redis = _client()
    for key in redis.scan_iter(match="talkpay:notified:ledger-check-*"):
        redis.delete(key)


def _metric(text: str, check: str) -> float:
    prefix = f'talkpay_ledger_check_problems{{check="{check}"}}'
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.django_db
def test_setup_schedules_runs_the_ledger_check_daily():
    call_command("setup_schedules")
    job = PeriodicTask.objects.get(task="web.ledger_check")
    assert json.loads(job.kwargs) == {} and job.enabled
    crontab = job.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, crontab.day_of_month) == ("30", "5", "*", "*")


def test_a_clean_ledger_is_recorded_and_nobody_is_mailed(celery_worker, stripe_emulator, api_client, caplog):
    with caplog.at_level(logging.INFO, logger="web.ledger_check"):
        result = ledger_check_task.delay().get(timeout=60)

    assert result == {"ok": True, "problems": {}}
    assert mail.outbox == []
    metrics = api_client.get("/api/metrics/").content.decode()
    assert _metric(metrics, "billing.invariants.succeeded_payments_booked") == 0
    assert "ledger check clean" in caplog.text


def test_a_failing_ledger_is_recorded_and_mails_the_operators_once(
    celery_worker, stripe_emulator, api_client, settings, caplog
):
    # given a succeeded payment whose split was never booked in the ledger
    settings.OPERATIONS_EMAILS = ["ops@example.com", "finance@example.com"]
    payment = PaymentFactory(status=Payment.Status.SUCCEEDED)

    # when beat's job runs, and runs again (a second beat, or a redelivered task)
    with caplog.at_level(logging.INFO, logger="web.ledger_check"):
        result = ledger_check_task.delay().get(timeout=60)
    again = ledger_check_task.delay().get(timeout=60)

    # then it reports the failing check, the metrics show it, the log says so...
    assert result["ok"] is False and result["problems"]["billing.invariants.succeeded_payments_booked"] >= 1
    assert again == result
    metrics = api_client.get("/api/metrics/").content.decode()
    assert _metric(metrics, "billing.invariants.succeeded_payments_booked") >= 1
    assert {r.levelname for r in caplog.records if r.getMessage() == "ledger check failed"} == {"ERROR"}
    # ...and the operators got one message with the report
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "finance@example.com"]
    assert "ledger check failed" in message.subject
    assert "FAIL billing.invariants.succeeded_payments_booked" in message.body
    assert f"payment {payment.pk}" in message.body
