"""Exactly once under concurrency: the same event delivered 50 times at once, over HTTP to a live
server, processed by a real Celery worker, books one ledger transaction and one earning."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from billing.models import LedgerKind, LedgerTransaction, Payment, WebhookEvent
from billing.tests.stripe_events import intent_confirm, intent_event, intent_payment, signed_body
from billing.webhooks.processing import webhook_event_process
from payouts.models import ListenerPayout
from web.testing import WEBHOOK_PATH
from web.tests.support import eventually

COPIES = 50


def _paid() -> tuple[Payment, dict]:
    """A payment paid on Stripe (the emulator), and Stripe's event saying so."""
    payment = intent_payment()
    intent_confirm(payment)
    return payment, intent_event("payment_intent.succeeded", payment)


def _at_once(count: int, fn) -> list:
    """Run `fn` from `count` threads released together."""
    barrier = threading.Barrier(count)

    def run(_):
        barrier.wait()
        try:
            return fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_event_delivered_50_times_at_once_books_once(live_server, celery_worker, stripe_emulator):
    payment, event = _paid()
    body, signature = signed_body(event)
    url = live_server.url + WEBHOOK_PATH
    headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature}

    def stripe_delivers() -> int:
        # Like Stripe, retry a delivery whose connection failed: the test server's listen backlog is
        # smaller than 50 simultaneous connections.
        for _ in range(20):
            try:
                return requests.post(url, data=body, headers=headers, timeout=30).status_code
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the endpoint never answered")

    codes = _at_once(COPIES, stripe_delivers)

    assert codes == [200] * COPIES
    eventually(lambda: WebhookEvent.objects.get(stripe_event_id=event["id"]).status == WebhookEvent.Status.PROCESSED)
    assert WebhookEvent.objects.filter(stripe_event_id=event["id"]).count() == 1
    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1
    assert ListenerPayout.objects.filter(payment=payment).count() == 1
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_workers_processing_the_same_stored_event_at_once_book_once(stripe_emulator):
    payment, event = _paid()
    stored = WebhookEvent.objects.create(
        stripe_event_id=event["id"], type=event["type"], payload=event, raw_body="{}", headers={}
    )

    outcomes = _at_once(COPIES, lambda: webhook_event_process(webhook_event_id=stored.pk))

    assert sorted(set(outcomes)) == ["processed"]
    stored.refresh_from_db()
    assert stored.attempts == 1
    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1
    assert ListenerPayout.objects.filter(payment=payment).count() == 1
