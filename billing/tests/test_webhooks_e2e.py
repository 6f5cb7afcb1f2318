"""End to end under chaos: 200 bookings created through the API and paid in the talker's browser with
the test cards (Stripe.js's calls: publishable key + client secret), some refunded from the Stripe
dashboard; the emulator delivers every event signed, duplicated, reordered and late to a live server
while a real Celery worker processes them. Every payment, booking and earning ends right, and the
ledger checks clean."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
import stripe
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing import ledger, money
from billing.models import Payment, WebhookEvent
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts.models import ListenerPayout
from web.testing import webhooks_register
from web.tests.factories import ListenerFactory, TalkerFactory
from web.tests.support import eventually
from web.tokens import UserRefreshToken

BOOKINGS = 200
CLIENTS = 4

# What the talker does, by booking number modulo 20.
VISA, DECLINED, DECLINED_THEN_VISA, NO_FUNDS, THREE_DS_OK, THREE_DS_FAIL, REFUND_ALL, REFUND_PART = (
    "visa",
    "declined",
    "declined_then_visa",
    "no_funds",
    "3ds_ok",
    "3ds_fail",
    "refund_all",
    "refund_part",
)
PLAN = [VISA] * 8 + [DECLINED, DECLINED_THEN_VISA, NO_FUNDS, THREE_DS_OK, THREE_DS_OK, THREE_DS_FAIL]
PLAN += [REFUND_ALL, REFUND_ALL, REFUND_PART, REFUND_PART, DECLINED_THEN_VISA, VISA]
PARTIAL = 1001


@dataclass
class Outcome:
    booking_id: int
    plan: str


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_200_bookings_paid_under_webhook_chaos_end_in_the_right_state(
    live_server, celery_worker, stripe_emulator, settings
):
    # Each client leaves some bookings unpaid on purpose (declines, abandoned checkouts).
    settings.BOOKING_PENDING_MAX_PER_TALKER = BOOKINGS
    webhooks_register(stripe_emulator, live_server.url)
    stripe_emulator.configure(
        time_scale=0.01,
        chaos_duplicate=0.3,
        chaos_reorder=0.3,
        chaos_delay=0.2,
        chaos_max_delay=1.0,
        chaos_reorder_release=0.3,
    )
    # Users without a password hash: they authenticate with JWTs, and hashing would dominate the run.
    talkers = [TalkerFactory(password=None) for _ in range(CLIENTS)]
    listeners = [ListenerFactory(password=None) for _ in range(10)]
    packages = [PackageFactory(price=price) for price in ("30.00", "50.00", "70.00", "33.33")]
    start = timezone.now() + timedelta(days=2)
    dashboard = stripe_emulator.stripe_client(api_key=settings.STRIPE_SECRET_KEY)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def talker_session(client_number: int) -> None:
        talker = talkers[client_number]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {UserRefreshToken.for_user(talker).access_token}"
        browser = stripe_emulator.stripe_client(api_key=settings.STRIPE_PUBLISHABLE_KEY)
        try:
            for n in range(client_number, BOOKINGS, CLIENTS):
                plan = PLAN[n % len(PLAN)]
                booking_id, intent_id, secret = _book(api, n, listeners, packages, start)
                _pay(browser, dashboard, stripe_emulator, plan, intent_id, secret)
                with lock:
                    outcomes.append(Outcome(booking_id, plan))
        finally:
            connection.close()

    def _book(api, n, listeners, packages, start):
        response = api.post(
            live_server.url + "/api/payment/bookings/create_booking/",
            json={
                "listener_id": listeners[n % len(listeners)].pk,
                "package_id": packages[n % len(packages)].pk,
                "scheduled_at": (start + timedelta(hours=n)).isoformat(),
            },
            timeout=30,
        )
        assert response.status_code in (201, 202), response.text
        body = response.json()
        booking_id = body["booking"]["id"]
        payment = body["payment"]
        deadline = time.monotonic() + 60
        while not payment["client_secret"]:  # 202: the worker was slower than the wait; poll
            assert time.monotonic() < deadline, f"no PaymentIntent for booking {booking_id}"
            time.sleep(0.1)
            payment = api.get(f"{live_server.url}/api/payment/bookings/{booking_id}/", timeout=30).json()["payment"]
        return booking_id, payment["payment_intent_id"], payment["client_secret"]

    def _pay(browser, dashboard, emulator, plan, intent_id, secret):
        def confirm(card):
            try:
                return browser.v1.payment_intents.confirm(
                    intent_id, params={"payment_method": card, "client_secret": secret}
                ).status
            except stripe.CardError:
                return "declined"

        if plan in (VISA, REFUND_ALL, REFUND_PART):
            assert confirm("pm_card_visa") == "succeeded"
        elif plan == DECLINED:
            assert confirm("pm_card_chargeDeclined") == "declined"
        elif plan == NO_FUNDS:
            assert confirm("pm_card_chargeDeclinedInsufficientFunds") == "declined"
        elif plan == DECLINED_THEN_VISA:
            assert confirm("pm_card_chargeDeclined") == "declined"
            assert confirm("pm_card_visa") == "succeeded"
        else:
            assert confirm("pm_card_authenticationRequired") == "requires_action"
            outcome = "succeed" if plan == THREE_DS_OK else "fail"
            emulator.post(f"/_emulator/payment_intents/{intent_id}/3ds", {"outcome": outcome})
        if plan == REFUND_ALL:
            dashboard.v1.refunds.create(params={"payment_intent": intent_id})
        elif plan == REFUND_PART:
            dashboard.v1.refunds.create(params={"payment_intent": intent_id, "amount": PARTIAL})

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(talker_session, range(CLIENTS)))
    assert len(outcomes) == BOOKINGS

    assert stripe_emulator.flush_webhooks(timeout=60)
    deliveries = stripe_emulator.deliveries()
    assert any(d["duplicate"] for d in deliveries), "chaos sent no duplicates"
    # A delivery may time out on a loaded machine; Stripe (the emulator) retries it until it lands.
    never_delivered = {d["event_id"] for d in deliveries} - {d["event_id"] for d in deliveries if d["success"]}
    assert not never_delivered
    eventually(
        lambda: not WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).exists(),
        timeout=60,
        what="the worker to process every event",
    )
    assert not WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).exists()

    for outcome in outcomes:
        _assert_final_state(outcome)
    call_command("ledger_check")


def _assert_final_state(outcome: Outcome) -> None:
    booking = Booking.objects.select_related("payment").get(pk=outcome.booking_id)
    payment = booking.payment
    earning = ListenerPayout.objects.filter(payment=payment).first()
    where = f"booking {booking.pk} ({outcome.plan})"
    if outcome.plan in (DECLINED, NO_FUNDS, THREE_DS_FAIL):
        assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD, where
        assert payment.failure_code, where
        assert booking.status == Booking.Status.PENDING, where
        assert earning is None, where
        return
    assert payment.status == Payment.Status.SUCCEEDED, where
    assert payment.stripe_charge_id.startswith("ch_"), where
    assert earning is not None and earning.amount == booking.listener_amount, where
    if outcome.plan == REFUND_ALL:
        assert payment.amount_refunded == payment.amount, where
        assert (booking.status, earning.status) == (Booking.Status.REFUNDED, ListenerPayout.Status.CANCELLED), where
        assert earning.net_amount == 0, where
    elif outcome.plan == REFUND_PART:
        app_part = money.proportion(PARTIAL, payment.amount, payment.app_fee)
        assert payment.amount_refunded == PARTIAL, where
        assert earning.amount_reversed == PARTIAL - app_part, where
        assert (booking.status, earning.status) == (Booking.Status.CONFIRMED, ListenerPayout.Status.PENDING), where
    else:
        assert payment.amount_refunded == 0, where
        assert (booking.status, earning.status) == (Booking.Status.CONFIRMED, ListenerPayout.Status.PENDING), where
    assert ledger.balance(ledger.listener_payable(booking.listener_id)) >= 0, where
