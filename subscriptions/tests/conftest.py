"""Subscriptions end to end: the real SDK against the emulator, which signs and sends its events to a
live server where a real Celery worker processes them. Talkers' Stripe customers live on a test clock,
so advancing it renews their subscriptions."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from billing.models import StripeCustomer
from billing.stripe_gateway import as_dict, client
from booking.tests.factories import PackageFactory
from payouts.tests.conftest import connected_listener, fund_platform  # noqa: F401  (fixtures)
from subscriptions.models import Subscription, SubscriptionPlan
from web.testing import WEBHOOK_PATH, auth_client
from web.tests.factories import ListenerFactory, TalkerFactory
from web.tests.support import eventually

WEEK = 7 * 86400
PAID = 3600 + 60  # past a period end: Stripe keeps the renewal a draft for an hour, then charges it


@pytest.fixture
def wired(stripe_emulator, live_server, celery_worker):
    stripe_emulator.register_webhook(live_server.url + WEBHOOK_PATH, secret=settings.STRIPE_WEBHOOK_SECRET)
    return stripe_emulator


class Talker:
    """A talker whose Stripe customer is on a test clock started now."""

    def __init__(self, user, clock: dict):
        self.user = user
        self.clock = clock
        self.api = auth_client(user)
        self.started = clock["frozen_time"]

    def advance(self, seconds: int, emulator) -> None:
        """Move the talker's clock `seconds` past its start, and let every event it caused be processed."""
        client().v1.test_helpers.test_clocks.advance(self.clock["id"], params={"frozen_time": self.started + seconds})
        settle(emulator)


def settle(emulator) -> None:
    """Every event sent so far delivered, and every delivered event processed by the worker."""
    from billing.models import WebhookEvent

    emulator.flush_webhooks(timeout=30)
    eventually(
        lambda: not WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).exists(),
        what="webhook events processed",
    )


@pytest.fixture
def talker_on_clock():
    def make(**user) -> Talker:
        talker = TalkerFactory(password=None, **user)
        clock = as_dict(client().v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())}))
        customer = client().v1.customers.create(
            params={"email": talker.email, "name": talker.username, "test_clock": clock["id"]}
        )
        StripeCustomer.objects.create(user=talker, stripe_customer_id=customer.id)
        return Talker(talker, clock)

    return make


@pytest.fixture
def plan():
    def make(interval: str = "week", price: str = "30.00", **fields) -> SubscriptionPlan:
        package = PackageFactory(price=Decimal(price), duration_minutes=fields.pop("minutes", 40))
        return SubscriptionPlan.objects.create(package=package, interval=interval, **fields)

    return make


@pytest.fixture
def listener():
    return ListenerFactory(password=None)


def subscribe(talker: Talker, listener, plan: SubscriptionPlan, first_session_at=None, **headers):
    first_session_at = first_session_at or timezone.now() + timedelta(days=2)
    return talker.api.post(
        "/api/payment/subscriptions/",
        {"listener_id": listener.pk, "plan_id": plan.pk, "first_session_at": first_session_at.isoformat()},
        format="json",
        **headers,
    )


def pay(client_secret: str, payment_method: str = "pm_card_visa") -> dict:
    """What Stripe.js's confirmCardPayment does for the talker."""
    intent_id = client_secret.split("_secret_")[0]
    return as_dict(client().v1.payment_intents.confirm(intent_id, params={"payment_method": payment_method}))


def subscribed_and_paid(talker, listener, plan, emulator, payment_method="pm_card_visa") -> Subscription:
    response = subscribe(talker, listener, plan)
    assert response.status_code == 201, response.json()
    pay(response.json()["payment"]["client_secret"], payment_method)
    sub = Subscription.objects.get(pk=response.json()["subscription"]["id"])
    settle(emulator)
    eventually(lambda: Subscription.objects.filter(pk=sub.pk, status="active").exists(), what="subscription active")
    return sub


def ledger_clean() -> None:
    call_command("ledger_check", stdout=open("/dev/null", "w"))
