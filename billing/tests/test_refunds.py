"""Refunds against the emulator: recorded first, sent once by a worker with our key, confirmed by
Stripe's events, the split reversed exactly; and the admin's refund page."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import ledger
from billing.models import Payment, Refund
from billing.refunds import (
    Policy,
    cancellation_refund_quote,
    payment_refundable_amount,
    refund_create,
    refund_create_for_admin,
    refund_send,
    refunds_sweep_pending,
)
from billing.stripe_gateway import TransientStripeError
from billing.stripe_gateway import refunds as stripe_refunds
from billing.tasks import refund_create_task
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    deliver,
    paid_booking,
    payment_of,
    split_balances,
)
from booking.models import Booking
from common.errors import DomainError
from payouts.models import ListenerPayout
from web.tests.factories import UserFactory


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


def _stripe_refunds(payment: Payment) -> list[dict]:
    from billing import stripe_gateway

    listing = stripe_gateway.call(
        stripe_gateway.client().v1.refunds.list, params={"payment_intent": payment.stripe_payment_intent_id}
    )
    return [stripe_gateway.as_dict(r) for r in listing.data]


def _refund(payment: Payment, amount: int, events: StripeEvents) -> Refund:
    refund = refund_create_for_admin(payment_id=payment.pk, amount=amount, reason="goodwill", admin=UserFactory())
    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()
    refund.refresh_from_db()
    return refund


@pytest.mark.django_db
def test_partial_refunds_reverse_the_split_in_proportion_exact_to_the_cent(events):
    booking = paid_booking(events, price="33.33")  # app 333, listener 3000
    payment = payment_of(booking)
    listener = ledger.listener_payable(booking.listener_id)

    first = _refund(payment, 1001, events)

    assert first.status == Refund.Status.SUCCEEDED
    # 1001 × 333 / 3333 = 100.0099 → the app gives back 100, the listener 901.
    assert split_balances(booking)[ledger.APP_REVENUE] == 333 - 100
    assert split_balances(booking)[listener] == 3000 - 901
    assert ListenerPayout.objects.get(booking=booking).net_amount == 3000 - 901
    assert_ledger_clean()

    _refund(payment, 999, events)
    # Cumulative 2000 × 333 / 3333 = 199.82 → 200 in all: 100 more for the app, 899 for the listener.
    assert split_balances(booking)[ledger.APP_REVENUE] == 333 - 200
    assert split_balances(booking)[listener] == 3000 - 1800
    assert_ledger_clean()

    _refund(payment, payment_refundable_amount(payment=payment_of(booking)), events)

    payment.refresh_from_db()
    booking.refresh_from_db()
    assert payment.amount_refunded == 3333
    assert booking.status == Booking.Status.REFUNDED
    assert split_balances(booking) == {
        ledger.PLATFORM_CASH: 0,
        ledger.APP_REVENUE: 0,
        ledger.DISPUTE_FEES: 0,
        listener: 0,
    }
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.CANCELLED
    assert sorted(r["amount"] for r in _stripe_refunds(payment)) == [999, 1001, 1333]
    assert_ledger_clean()


@pytest.mark.django_db
def test_no_refund_can_exceed_what_remains_even_while_another_is_in_flight(events):
    payment = payment_of(paid_booking(events))
    refund_create_for_admin(payment_id=payment.pk, amount=2000, reason="first", admin=UserFactory())

    with pytest.raises(DomainError) as refused:
        refund_create_for_admin(payment_id=payment.pk, amount=1001, reason="second", admin=UserFactory())

    assert refused.value.field == "amount"
    assert "10.00" in refused.value.message
    assert Refund.objects.filter(payment=payment).count() == 1


@pytest.mark.django_db
def test_an_admin_refund_needs_a_reason_and_a_paid_payment(events, db):
    payment = payment_of(paid_booking(events))
    with pytest.raises(DomainError) as no_reason:
        refund_create_for_admin(payment_id=payment.pk, amount=100, reason="  ", admin=UserFactory())
    assert no_reason.value.field == "reason"

    Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.REQUIRES_PAYMENT_METHOD)
    with pytest.raises(DomainError) as unpaid:
        refund_create(payment_id=payment.pk, amount=100, reason="x", policy=Policy.ADMIN)
    assert unpaid.value.code == "invalid_state"
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_sending_a_refund_twice_refunds_once_on_stripe_with_our_key_and_metadata(events):
    payment = payment_of(paid_booking(events))
    refund = refund_create(payment_id=payment.pk, amount=1200, reason="late", policy=Policy.TALKER_LATE)

    refund_create_task.apply(args=[refund.pk]).get()
    refund_create_task.apply(args=[refund.pk]).get()

    refund.refresh_from_db()
    stripe_side = _stripe_refunds(payment)
    assert [r["id"] for r in stripe_side] == [refund.stripe_refund_id]
    assert stripe_side[0]["amount"] == 1200
    assert stripe_side[0]["metadata"]["refund_id"] == str(refund.pk)
    assert stripe_side[0]["metadata"]["payment_id"] == str(payment.pk)


@pytest.mark.django_db
def test_a_crash_after_stripe_refunded_is_covered_by_the_idempotency_key(events):
    payment = payment_of(paid_booking(events))
    refund = refund_create(payment_id=payment.pk, amount=500, reason="x", policy=Policy.ADMIN)
    # Stripe made the refund, but the worker died before saving its answer.
    first = stripe_refunds.refund_create(
        refund_id=refund.pk,
        payment_id=payment.pk,
        booking_id=payment.booking_id,
        payment_intent_id=payment.stripe_payment_intent_id,
        amount=500,
        reason="x",
    )

    refund_send(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.stripe_refund_id == first["id"]
    assert len(_stripe_refunds(payment)) == 1


@pytest.mark.django_db
def test_stripe_trouble_leaves_the_refund_pending_and_the_next_attempt_sends_it(stripe_emulator, events):
    payment = payment_of(paid_booking(events))
    refund = refund_create(payment_id=payment.pk, amount=700, reason="x", policy=Policy.ADMIN)
    # More 500s than the SDK's own retries.
    stripe_emulator.post("/_emulator/faults", {"mode": "500", "count": 3, "path_prefix": "/v1/refunds"})

    with pytest.raises(TransientStripeError):
        refund_send(refund_id=refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.stripe_refund_id) == (Refund.Status.PENDING, None)

    refund_send(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.REQUESTED
    assert [r["amount"] for r in _stripe_refunds(payment)] == [700]


@pytest.mark.django_db
def test_a_refund_stripe_refuses_is_marked_failed_with_its_reason(stripe_emulator, events):
    booking = paid_booking(events)
    payment = payment_of(booking)
    stripe_emulator.post(f"/_emulator/charges/{payment.stripe_charge_id}/dispute")
    refund = refund_create(payment_id=payment.pk, amount=700, reason="x", policy=Policy.ADMIN)

    refund_send(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert "charge_disputed" in refund.failure_reason
    # A failed refund no longer holds part of the payment.
    assert payment_refundable_amount(payment=payment_of(booking)) == 3000


@pytest.mark.django_db
def test_duplicated_and_reordered_refund_events_change_nothing_more(events):
    booking = paid_booking(events, price="33.33")
    payment = payment_of(booking)
    for amount in (1001, 999):
        refund = refund_create(payment_id=payment.pk, amount=amount, reason="x", policy=Policy.ADMIN)
        refund_create_task.apply(args=[refund.pk]).get()
    stream = events.new()
    assert {"charge.refunded"} <= {e["type"] for e in stream}

    for event in stream[::-1] + stream + stream[::-1]:
        deliver(event)
        deliver({**event, "id": event["id"] + "_again"})

    payment.refresh_from_db()
    assert payment.amount_refunded == 2000
    assert split_balances(booking)[ledger.APP_REVENUE] == 333 - 200
    assert split_balances(booking)[ledger.listener_payable(booking.listener_id)] == 3000 - 1800
    assert sorted(Refund.objects.filter(payment=payment).values_list("status", flat=True)) == [
        Refund.Status.SUCCEEDED,
        Refund.Status.SUCCEEDED,
    ]
    assert_ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_the_worker_sends_a_cancellation_refund_and_the_sweeper_resends_a_lost_one(stripe_emulator, celery_worker):
    from web.testing import auth_client

    events = StripeEvents()
    booking = paid_booking(events)
    lost = paid_booking(events)
    # A refund whose task was lost (the broker was down when it was recorded).
    orphan = Refund.objects.create(
        payment=payment_of(lost),
        amount=300,
        reason="x",
        policy=Policy.ADMIN,
        enqueued_at=timezone.now() - timedelta(hours=1),
    )

    response = auth_client(booking.listener).post(
        f"/api/payment/bookings/{booking.pk}/cancel/", {"reason": "ill"}, format="json"
    )
    assert response.status_code == 200
    assert refunds_sweep_pending() == 1

    refund = Refund.objects.get(pk=response.json()["refund"]["refund_id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        refund.refresh_from_db()
        orphan.refresh_from_db()
        if refund.stripe_refund_id and orphan.stripe_refund_id:
            break
        time.sleep(0.05)
    assert (refund.status, orphan.status) == (Refund.Status.REQUESTED, Refund.Status.REQUESTED)
    assert [r["amount"] for r in _stripe_refunds(payment_of(booking))] == [3000]
    assert [r["amount"] for r in _stripe_refunds(payment_of(lost))] == [300]


@pytest.mark.django_db
def test_the_admin_records_a_refund_of_any_amount_up_to_what_remains(events, admin_client):
    payment = payment_of(paid_booking(events))

    too_much = admin_client.post(
        "/admin/billing/refund/add/", {"payment": payment.pk, "amount_decimal": "30.01", "reason": "sorry"}
    )
    assert too_much.status_code == 200
    assert "30.00 usd can still be refunded" in too_much.content.decode()
    assert not Refund.objects.exists()

    done = admin_client.post(
        "/admin/billing/refund/add/", {"payment": payment.pk, "amount_decimal": "12.50", "reason": "sorry"}
    )

    assert done.status_code == 302, done.content.decode()[:2000]
    refund = Refund.objects.get()
    assert (refund.amount, refund.reason, refund.policy, refund.status) == (
        1250,
        "sorry",
        Policy.ADMIN,
        Refund.Status.PENDING,
    )
    assert refund.requested_by.is_superuser
    assert admin_client.get(f"/admin/billing/refund/{refund.pk}/change/").status_code == 200


@pytest.mark.parametrize(
    ("before_start", "by_listener", "expected"),
    [
        (timedelta(hours=24), False, (3333, Policy.TALKER_EARLY)),
        (timedelta(hours=24) - timedelta(seconds=1), False, (1667, Policy.TALKER_LATE)),
        (timedelta(seconds=1), False, (1667, Policy.TALKER_LATE)),
        (timedelta(0), False, (0, Policy.TALKER_AFTER_START)),
        (-timedelta(hours=1), False, (0, Policy.TALKER_AFTER_START)),
        (-timedelta(hours=1), True, (3333, Policy.LISTENER_CANCELLED)),
        (timedelta(minutes=5), True, (3333, Policy.LISTENER_CANCELLED)),
    ],
)
def test_the_cancellation_policy_at_its_boundaries(settings, before_start, by_listener, expected):
    settings.CANCEL_FULL_REFUND_HOURS = 24
    settings.CANCEL_LATE_REFUND_PERCENT = 50
    now = timezone.now()

    quote = cancellation_refund_quote(
        total=3333, scheduled_at=now + before_start, cancelled_by_listener=by_listener, now=now
    )

    assert (quote.amount, quote.policy) == expected


def test_the_cancellation_policy_follows_its_settings(settings):
    settings.CANCEL_FULL_REFUND_HOURS = 48
    settings.CANCEL_LATE_REFUND_PERCENT = 25
    now = timezone.now()

    quote = cancellation_refund_quote(
        total=3000, scheduled_at=now + timedelta(hours=30), cancelled_by_listener=False, now=now
    )

    assert (quote.amount, quote.policy) == (750, Policy.TALKER_LATE)


@pytest.mark.django_db
def test_a_charge_refunded_event_without_listed_refunds_is_applied_from_stripes_refund_list(events):
    """Stripe's payloads carry no `charge.refunds` (API 2022-11-15 and later): the handler lists them."""
    booking = paid_booking(events)
    payment = payment_of(booking)
    refund = refund_create_for_admin(payment_id=payment.pk, amount=1000, reason="goodwill", admin=UserFactory())
    refund_create_task.apply(args=[refund.pk]).get()
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.PENDING)  # as if the worker's save was lost

    charge_refunded = events.new("charge.refunded")
    deliver(charge_refunded[0])

    assert "refunds" not in charge_refunded[0]["data"]["object"]
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED and refund.stripe_refund_id.startswith("re_")
