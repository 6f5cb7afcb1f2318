"""Disputes against the emulator: Stripe opens, withdraws, reinstates and closes; our books follow,
once, whatever order the events arrive in."""

import random

import pytest

from billing import ledger
from billing.models import Dispute
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    complete_session,
    connected_listener,
    deliver,
    paid_booking,
    pay_out,
    payment_of,
    split_balances,
)
from booking.models import Booking
from payouts.models import ListenerPayout, Payout

pytestmark = pytest.mark.django_db

DISPUTE_FEE = 1500  # the emulator's, like Stripe's US fee


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


def _open_dispute(stripe_emulator, booking) -> str:
    return stripe_emulator.post(f"/_emulator/charges/{payment_of(booking).stripe_charge_id}/dispute")["id"]


def _close(stripe_emulator, dispute_id: str, outcome: str) -> None:
    stripe_emulator.post(f"/_emulator/disputes/{dispute_id}/close", {"outcome": outcome})


def _state(booking) -> dict:
    """What a booking's dispute did, in terms comparable across bookings of the same price."""
    booking.refresh_from_db()
    earning = ListenerPayout.objects.get(booking=booking)
    dispute = Dispute.objects.get(payment__booking=booking)
    payment = payment_of(booking)
    return {
        "booking": booking.status,
        "earning": (earning.status, earning.amount_reversed),
        "dispute": (dispute.status, dispute.amount, dispute.fee, dispute.funds_withdrawn, dispute.funds_reinstated),
        "listener_payable": ledger.balance(ledger.listener_payable(booking.listener_id)),
        "ledger_kinds": sorted(payment.ledger_transactions.values_list("kind", flat=True)),
    }


def test_an_open_dispute_freezes_the_booking_holds_the_earning_and_books_the_withdrawal(stripe_emulator, events):
    booking = complete_session(paid_booking(events))

    dispute_id = _open_dispute(stripe_emulator, booking)
    delivered = events.deliver_new()

    assert {"charge.dispute.created", "charge.dispute.funds_withdrawn"} <= {e["type"] for e in delivered}
    booking.refresh_from_db()
    assert booking.status == Booking.Status.DISPUTED
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.HELD
    dispute = Dispute.objects.get(stripe_dispute_id=dispute_id)
    assert (dispute.status, dispute.amount, dispute.fee, dispute.funds_withdrawn) == (
        "needs_response",
        3000,
        DISPUTE_FEE,
        True,
    )
    assert dispute.evidence_due_by is not None
    # The disputed amount and the fee left our balance; the app bears them while the dispute is open.
    balances = split_balances(booking)
    assert balances[ledger.DISPUTE_FEES] == 3000 + DISPUTE_FEE
    assert balances[ledger.PLATFORM_CASH] == 3000 - 3000 - DISPUTE_FEE
    assert balances[ledger.listener_payable(booking.listener_id)] == 2700
    assert_ledger_clean()


def test_a_held_earning_is_not_paid_out(stripe_emulator, events):
    booking = complete_session(paid_booking(events, listener=connected_listener(stripe_emulator)))
    _open_dispute(stripe_emulator, booking)
    events.deliver_new()

    assert pay_out(stripe_emulator, booking.listener) is None
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.HELD


def test_a_dispute_won_before_payout_releases_the_earning_and_books_the_reinstatement(stripe_emulator, events):
    booking = complete_session(paid_booking(events, listener=connected_listener(stripe_emulator)))
    dispute_id = _open_dispute(stripe_emulator, booking)
    events.deliver_new()

    _close(stripe_emulator, dispute_id, "won")
    events.deliver_new()

    booking.refresh_from_db()
    assert booking.status == Booking.Status.COMPLETED
    earning = ListenerPayout.objects.get(booking=booking)
    assert (earning.status, earning.amount_reversed) == (ListenerPayout.Status.PENDING, 0)
    assert Dispute.objects.get(stripe_dispute_id=dispute_id).status == Dispute.Status.WON
    balances = split_balances(booking)
    # The emulator gives the fee back with the amount on a won dispute: nothing stays with the app.
    assert balances[ledger.DISPUTE_FEES] == 0
    assert balances[ledger.APP_REVENUE] == 300
    assert balances[ledger.listener_payable(booking.listener_id)] == 2700
    assert_ledger_clean()
    # Released, the earning is paid out by the next run.
    payout = pay_out(stripe_emulator, booking.listener)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 2700)
    assert_ledger_clean()


def test_a_dispute_lost_before_payout_reverses_the_split_and_cancels_the_earning(stripe_emulator, events):
    booking = complete_session(paid_booking(events, price="33.33"))
    dispute_id = _open_dispute(stripe_emulator, booking)
    events.deliver_new()

    _close(stripe_emulator, dispute_id, "lost")
    events.deliver_new()

    booking.refresh_from_db()
    assert booking.status == Booking.Status.DISPUTED
    earning = ListenerPayout.objects.get(booking=booking)
    assert (earning.status, earning.amount_reversed) == (ListenerPayout.Status.CANCELLED, 3000)
    balances = split_balances(booking)
    # Exact reversal of the 333 / 3000 split; what the app keeps losing is Stripe's fee.
    assert balances == {
        ledger.PLATFORM_CASH: 3333 - 3333 - DISPUTE_FEE,
        ledger.APP_REVENUE: 0,
        ledger.DISPUTE_FEES: DISPUTE_FEE,
        ledger.listener_payable(booking.listener_id): 0,
    }
    assert Dispute.objects.get(stripe_dispute_id=dispute_id).closed_at is not None
    assert_ledger_clean()


def test_a_partial_dispute_lost_reverses_the_split_in_proportion(stripe_emulator, events):
    booking = complete_session(paid_booking(events, price="33.33"))
    charge_id = payment_of(booking).stripe_charge_id
    dispute_id = stripe_emulator.post(f"/_emulator/charges/{charge_id}/dispute", {"amount": 1001})["id"]
    events.deliver_new()

    _close(stripe_emulator, dispute_id, "lost")
    events.deliver_new()

    # App part: 1001 × 333 / 3333 = 100.0099 → 100; the listener gives back 901 and keeps the rest.
    earning = ListenerPayout.objects.get(booking=booking)
    assert (earning.status, earning.net_amount) == (ListenerPayout.Status.PENDING, 3000 - 901)
    balances = split_balances(booking)
    assert balances[ledger.APP_REVENUE] == 333 - 100
    assert balances[ledger.listener_payable(booking.listener_id)] == 3000 - 901
    assert balances[ledger.DISPUTE_FEES] == DISPUTE_FEE
    assert_ledger_clean()


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_duplicated_and_reordered_dispute_events_end_in_the_same_state(stripe_emulator, events, outcome):
    in_order = complete_session(paid_booking(events))
    shuffled = complete_session(paid_booking(events))
    streams = {}
    for booking in (in_order, shuffled):
        dispute_id = _open_dispute(stripe_emulator, booking)
        _close(stripe_emulator, dispute_id, outcome)
        streams[booking.pk] = [e for e in events.new() if e["data"]["object"].get("id") == dispute_id]
    assert len(streams[in_order.pk]) >= 3

    for event in streams[in_order.pk]:
        deliver(event)
    expected = _state(in_order)
    stream = list(streams[shuffled.pk])
    random.Random(6).shuffle(stream)
    # Closed first, then everything again, twice over, as Stripe's retries may.
    stream.sort(key=lambda e: e["type"] != "charge.dispute.closed")
    for event in stream + stream[::-1]:
        deliver(event)
        deliver({**event, "id": event["id"] + "_redelivered_as_new_event"})
    got = _state(shuffled)

    assert got == expected
    assert got["listener_payable"] == (2700 if outcome == "won" else 0)
    assert_ledger_clean()


def test_a_dispute_won_after_payout_leaves_the_paid_earning_alone(stripe_emulator, events):
    booking = complete_session(paid_booking(events, listener=connected_listener(stripe_emulator)))
    payout = pay_out(stripe_emulator, booking.listener)
    assert payout.status == Payout.Status.PAID
    dispute_id = _open_dispute(stripe_emulator, booking)
    events.deliver_new()
    assert ListenerPayout.objects.get(booking=booking).status == ListenerPayout.Status.PAID

    _close(stripe_emulator, dispute_id, "won")
    events.deliver_new()

    booking.refresh_from_db()
    assert booking.status == Booking.Status.COMPLETED
    earning = ListenerPayout.objects.get(booking=booking)
    assert (earning.status, earning.amount_reversed) == (ListenerPayout.Status.PAID, 0)
    payout.refresh_from_db()
    assert payout.amount_reversed == 0
    assert not booking.listener.clawbacks.exists()
    assert_ledger_clean()


def test_a_dispute_on_a_charge_we_do_not_know_is_ignored(stripe_emulator, events):
    booking = paid_booking(events)
    _open_dispute(stripe_emulator, booking)
    stream = events.new("charge.dispute.created")
    foreign = {
        **stream[0],
        "data": {"object": {**stream[0]["data"]["object"], "charge": "ch_x", "payment_intent": None}},
    }

    assert deliver({**foreign, "id": "evt_foreign"}) == "ignored"
    assert not Dispute.objects.exists()


def test_the_admin_lists_open_disputes_by_evidence_deadline_linked_to_booking_and_payment(
    stripe_emulator, events, admin_client
):
    booking = paid_booking(events)
    dispute_id = _open_dispute(stripe_emulator, booking)
    closed = paid_booking(events)
    _close(stripe_emulator, _open_dispute(stripe_emulator, closed), "won")
    events.deliver_new()

    page = admin_client.get("/admin/billing/dispute/", {"open": "yes"}).content.decode()

    assert dispute_id in page
    assert Dispute.objects.get(payment__booking=closed).stripe_dispute_id not in page
    assert f"/admin/booking/booking/{booking.pk}/change/" in page
    assert f"/admin/billing/payment/{payment_of(booking).pk}/change/" in page
    due = Dispute.objects.get(stripe_dispute_id=dispute_id).evidence_due_by
    assert due is not None and str(due.year) in page


def test_a_dispute_lost_after_a_partial_refund_reverses_exactly_what_remains(stripe_emulator, events):
    """10.00 split 1.00 / 9.00. A 0.05 refund takes back 0.01 (0.005 rounded up) from the app; the
    chargeback of the other 9.95 then takes the app's remaining 0.99, not 1.00 (9.95 × 10 % = 0.995)."""
    from billing.refunds import Policy, refund_create
    from billing.tasks import refund_create_task

    booking = complete_session(paid_booking(events, price="10.00"))
    payment = payment_of(booking)
    refund = refund_create(payment_id=payment.pk, amount=5, reason="x", policy=Policy.ADMIN)
    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()
    charge_id = payment.stripe_charge_id
    dispute_id = stripe_emulator.post(f"/_emulator/charges/{charge_id}/dispute", {"amount": 995})["id"]
    _close(stripe_emulator, dispute_id, "lost")
    events.deliver_new()

    balances = split_balances(booking)
    assert balances[ledger.APP_REVENUE] == 0
    assert balances[ledger.listener_payable(booking.listener_id)] == 0
    earning = ListenerPayout.objects.get(booking=booking)
    assert (earning.status, earning.amount_reversed) == (ListenerPayout.Status.CANCELLED, 900)
    assert_ledger_clean()
