"""A handler that crashes is retried by the worker with backoff, left visibly failed after its last
try, and replayable by id (command or admin) once the cause is fixed; replaying changes nothing more."""

from datetime import timedelta

import pytest
from celery.signals import before_task_publish
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import tasks
from billing.models import LedgerKind, LedgerTransaction, Payment, WebhookEvent
from billing.tests.stripe_events import deliver, intent_confirm, intent_event, intent_payment, signed_body, stripe_id
from billing.webhooks import processing
from billing.webhooks.dispatch import webhook_handlers
from payouts.models import ListenerPayout
from web.testing import WEBHOOK_PATH
from web.tests.support import eventually

# The events carry real PaymentIntents: their handler reads each one from Stripe (the emulator).
pytestmark = pytest.mark.usefixtures("stripe_emulator")


class Crashing:
    """Wraps the real handler; raises like a lost database connection while `failures` remain."""

    def __init__(self, real, failures: int):
        self.real = real
        self.failures = failures
        self.calls = 0

    def __call__(self, event: dict) -> str:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("server closed the connection unexpectedly")
        return self.real(event)


@pytest.fixture
def crashing_succeeded_handler(monkeypatch):
    # Short backoff so the worker's retries take milliseconds, not minutes.
    monkeypatch.setattr(tasks, "backoff_seconds", lambda retries: 0.01)
    table = webhook_handlers()

    def install(failures: int) -> Crashing:
        crashing = Crashing(table["payment_intent.succeeded"], failures)
        monkeypatch.setitem(table, "payment_intent.succeeded", crashing)
        return crashing

    return install


def _succeeded_event() -> tuple[Payment, dict]:
    """A payment paid on Stripe (the emulator) and Stripe's event saying so."""
    payment = intent_payment()
    intent_confirm(payment)
    return payment, intent_event("payment_intent.succeeded", payment)


def _post(client, event: dict):
    body, signature = signed_body(event)
    return client.post(WEBHOOK_PATH, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)


def _stored(event: dict) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_event_id=event["id"])


@pytest.mark.django_db(transaction=True)
def test_a_crashing_handler_is_retried_by_the_worker_until_it_succeeds(
    celery_worker, api_client, crashing_succeeded_handler
):
    crashing = crashing_succeeded_handler(failures=2)
    payment, event = _succeeded_event()

    assert _post(api_client, event).status_code == 200

    eventually(lambda: _stored(event).status == WebhookEvent.Status.PROCESSED)
    assert (_stored(event).attempts, crashing.calls) == (3, 3)
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_after_the_last_try_the_event_stays_failed_and_a_replay_processes_it_once(
    celery_worker, api_client, crashing_succeeded_handler
):
    crashing = crashing_succeeded_handler(failures=10**6)
    payment, event = _succeeded_event()

    _post(api_client, event)

    tries = tasks.WEBHOOK_MAX_RETRIES + 1
    eventually(lambda: _stored(event).status == WebhookEvent.Status.FAILED)
    stored = _stored(event)
    assert stored.attempts == tries
    assert "server closed the connection unexpectedly" in stored.last_error
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.REQUIRES_PAYMENT_METHOD
    assert not LedgerTransaction.objects.filter(payment=payment).exists()

    crashing.failures = 0  # the cause is fixed
    call_command("replay_webhook", event["id"])
    call_command("replay_webhook", event["id"])  # replaying a processed event changes nothing

    stored = _stored(event)
    assert (stored.status, stored.last_error) == (WebhookEvent.Status.PROCESSED, "")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1
    assert ListenerPayout.objects.filter(payment=payment).count() == 1


@pytest.mark.django_db
def test_replaying_a_still_failing_event_or_an_unknown_id_exits_non_zero(crashing_succeeded_handler):
    crashing_succeeded_handler(failures=10**6)
    _, event = _succeeded_event()
    with pytest.raises(processing.WebhookHandlerFailed):
        deliver(event)
    assert _stored(event).status == WebhookEvent.Status.FAILED

    with pytest.raises(CommandError):
        call_command("replay_webhook", event["id"])
    with pytest.raises(CommandError):
        call_command("replay_webhook", "evt_never_received")


@pytest.mark.django_db
def test_the_admin_action_replays_the_selected_events(admin_client, crashing_succeeded_handler):
    crashing = crashing_succeeded_handler(failures=1)
    payment, event = _succeeded_event()
    with pytest.raises(processing.WebhookHandlerFailed):
        deliver(event)
    crashing.failures = 0

    response = admin_client.post(
        "/admin/billing/webhookevent/",
        {"action": "replay", "_selected_action": [_stored(event).pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert _stored(event).status == WebhookEvent.Status.PROCESSED
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED


@pytest.mark.django_db
def test_events_left_pending_are_enqueued_again_by_the_sweeper():
    _, event = _succeeded_event()
    body, _ = signed_body(event)
    fresh = WebhookEvent.objects.create(
        stripe_event_id=stripe_id("evt"), type=event["type"], payload=event, raw_body=body.decode()
    )
    stale = WebhookEvent.objects.create(
        stripe_event_id=event["id"], type=event["type"], payload=event, raw_body=body.decode()
    )
    WebhookEvent.objects.filter(pk=stale.pk).update(received_at=timezone.now() - timedelta(hours=1))
    published = []

    def record(sender=None, body=None, **kwargs):
        published.append((sender, body[0][0]))

    before_task_publish.connect(record, weak=False)
    try:
        assert processing.webhook_events_sweep() == 1
    finally:
        before_task_publish.disconnect(record)

    assert published == [("billing.webhook_process", stale.pk)]
    assert fresh.pk != stale.pk
