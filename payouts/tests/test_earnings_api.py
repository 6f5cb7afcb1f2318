"""The listener's earnings API: their earnings, and what they are owed and have earned, from the ledger
and net of refunds."""

import pytest

from billing import ledger, stripe_gateway
from billing.models import Payment
from billing.stripe_gateway import webhook_reads
from billing.tests.stripe_events import deliver, intent_confirm, intent_event, intent_payment, stripe_event
from booking.tests.factories import BookingFactory, PackageFactory
from web.testing import auth_client
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_emulator")]

PENDING_EARNINGS = "/api/payment/payouts/pending_earnings/"
EARNINGS = "/api/payment/payouts/"


def _paid(*, talker, listener, price: str, refunded: int = 0) -> Payment:
    """Paid on Stripe (the emulator) and, with `refunded`, refunded that much; booked from Stripe's events."""
    payment = intent_payment(
        booking=BookingFactory(talker=talker, listener=listener, package=PackageFactory(price=price))
    )
    charge_id = intent_confirm(payment)["latest_charge"]["id"]
    deliver(intent_event("payment_intent.succeeded", payment))
    if refunded:
        stripe_gateway.call(stripe_gateway.client().v1.refunds.create, params={"charge": charge_id, "amount": refunded})
        deliver(stripe_event("charge.refunded", webhook_reads.charge_retrieve(charge_id)))
    return payment


def test_pending_and_total_earnings_come_from_the_ledger_net_of_refunds():
    talker, listener = TalkerFactory(), ListenerFactory()
    for price in ("50.00", "50.00", "70.00"):
        _paid(talker=talker, listener=listener, price=price)  # listener shares 45 + 45 + 63
    _paid(talker=talker, listener=listener, price="30.00", refunded=3000)  # fully refunded: 27 earned, 27 taken back
    _paid(talker=talker, listener=listener, price="30.00", refunded=1000)  # listener gives back 9.00 of 27.00
    _paid(talker=TalkerFactory(), listener=ListenerFactory(), price="70.00")  # someone else's
    # One 45.00 earning paid out, booked as the payout run books a transfer.
    ledger.ledger_post(
        key="payout-test-1",
        kind="payout_transfer",
        lines=[ledger.debit(ledger.listener_payable(listener.pk), 4500), ledger.credit(ledger.PLATFORM_CASH, 4500)],
    )

    response = auth_client(listener).get(PENDING_EARNINGS)

    assert response.status_code == 200
    assert response.json() == {"pending_earnings": "126.00", "total_earned": "171.00"}


def test_the_earnings_list_shows_only_the_listeners_own_earnings_paginated():
    talker, listener = TalkerFactory(), ListenerFactory()
    mine = [_paid(talker=talker, listener=listener, price="50.00") for _ in range(3)]
    refunded = _paid(talker=talker, listener=listener, price="30.00", refunded=3000)
    _paid(talker=talker, listener=ListenerFactory(), price="50.00")

    body = auth_client(listener).get(EARNINGS).json()

    assert (body["count"], body["next"], body["previous"]) == (4, None, None)
    rows = {row["payment"]: row for row in body["results"]}
    assert set(rows) == {payment.pk for payment in [*mine, refunded]}
    assert rows[mine[0].pk] | {"id": None, "created_at": None, "scheduled_at": None, "payable_at": None} == {
        "id": None,
        "booking": mine[0].booking_id,
        "payment": mine[0].pk,
        "scheduled_at": None,
        "amount": "45.00",
        "amount_reversed": "0.00",
        "net_amount": "45.00",
        "currency": "usd",
        "status": "pending",
        "payable_at": None,
        "payout": None,
        "payout_detail": None,
        "created_at": None,
    }
    assert (rows[refunded.pk]["net_amount"], rows[refunded.pk]["status"]) == ("0.00", "cancelled")


@pytest.mark.parametrize("path", [EARNINGS, PENDING_EARNINGS])
def test_only_listeners_see_earnings(path, api_client):
    assert auth_client(TalkerFactory()).get(path).status_code == 403
    assert api_client.get(path).status_code == 401
