"""Money taken back after it was transferred to the listener: the transfer is reversed on Stripe, or,
when the connected account cannot cover it, the debt is netted out of the next payouts."""

import pytest

from billing import ledger, stripe_gateway
from billing.models import Payment
from billing.refunds import refund_create_for_admin
from billing.tasks import refund_create_task
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    complete_session,
    connected_listener,
    drain_connected_account,
    paid_booking,
    pay_out,
    payment_of,
)
from payouts.models import Clawback, ListenerPayout, Payout
from payouts.services import debt_outstanding
from payouts.tasks import clawback_execute_task
from web.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


@pytest.fixture
def paid_out(stripe_emulator, events):
    """A completed 33.33 session (app 333, listener 3000) whose earning was transferred."""
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="33.33", listener=listener))
    payout = pay_out(stripe_emulator, listener)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 3000)
    return booking, payout


def _refund(payment: Payment, amount: int, events: StripeEvents) -> None:
    refund = refund_create_for_admin(payment_id=payment.pk, amount=amount, reason="complaint", admin=UserFactory())
    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()


def _claw_back_all() -> list[str]:
    return [clawback_execute_task.apply(args=[c.pk]).get() for c in Clawback.objects.order_by("pk")]


def _transfer(payout: Payout) -> dict:
    return stripe_gateway.as_dict(
        stripe_gateway.call(stripe_gateway.client().v1.transfers.retrieve, payout.stripe_transfer_id)
    )


def _payable(listener) -> int:
    return ledger.balance(ledger.listener_payable(listener.pk))


def test_a_full_refund_after_payout_reverses_the_listener_share_of_the_transfer(events, paid_out):
    booking, payout = paid_out

    _refund(payment_of(booking), 3333, events)
    assert _claw_back_all() == [Clawback.Status.REVERSED]

    transfer = _transfer(payout)
    assert (transfer["amount_reversed"], transfer["reversed"]) == (3000, True)
    payout.refresh_from_db()
    assert (payout.amount_reversed, payout.status) == (3000, Payout.Status.REVERSED)
    assert ListenerPayout.objects.get(booking=booking).net_amount == 0
    assert _payable(booking.listener) == 0
    assert ledger.balance(ledger.APP_REVENUE) == 0
    assert_ledger_clean()
    # Stripe's transfer.reversed for the same reversal books nothing more.
    events.deliver_new()
    assert _payable(booking.listener) == 0
    assert_ledger_clean()


def test_a_partial_refund_after_payout_reverses_only_the_listener_part(events, paid_out):
    booking, payout = paid_out

    _refund(payment_of(booking), 1001, events)
    _claw_back_all()
    _claw_back_all()  # a redelivered task changes nothing

    # 1001 × 333 / 3333 → 100 for the app; the listener's 901 comes back from their account.
    transfer = _transfer(payout)
    assert transfer["amount_reversed"] == 901
    assert len(transfer["reversals"]["data"]) == 1
    payout.refresh_from_db()
    assert (payout.amount_reversed, payout.status) == (901, Payout.Status.PAID)
    assert _payable(booking.listener) == 0
    assert_ledger_clean()


def test_when_the_account_cannot_cover_the_reversal_the_debt_is_netted_out_of_the_next_payout(
    stripe_emulator, events, paid_out
):
    booking, payout = paid_out
    drain_connected_account(booking.listener)

    _refund(payment_of(booking), 3333, events)
    assert _claw_back_all() == [Clawback.Status.DEBT]

    clawback = Clawback.objects.get()
    assert "balance_insufficient" in clawback.failure_reason
    assert _transfer(payout)["amount_reversed"] == 0
    assert debt_outstanding(listener_id=booking.listener_id) == 3000
    # The ledger carries the debt: the listener's payable is 3000 below zero.
    assert _payable(booking.listener) == -3000

    # Next week the listener earns 45.00 (a 50.00 session): 30.00 of it repays the debt.
    later = complete_session(paid_booking(events, price="50.00", listener=booking.listener))
    next_payout = pay_out(stripe_emulator, booking.listener, weeks_ahead=1)

    assert (next_payout.status, next_payout.amount) == (Payout.Status.PAID, 4500 - 3000)
    assert _transfer(next_payout)["amount"] == 1500
    clawback.refresh_from_db()
    assert (clawback.status, clawback.amount_recovered) == (Clawback.Status.RECOVERED, 3000)
    assert debt_outstanding(listener_id=booking.listener_id) == 0
    assert ListenerPayout.objects.get(booking=later).status == ListenerPayout.Status.PAID
    assert _payable(booking.listener) == 0
    assert_ledger_clean()


def test_a_debt_larger_than_the_next_payout_is_carried_and_no_payout_is_negative(stripe_emulator, events, paid_out):
    booking, _ = paid_out
    drain_connected_account(booking.listener)
    _refund(payment_of(booking), 3333, events)
    _claw_back_all()

    complete_session(paid_booking(events, price="20.00", listener=booking.listener))  # listener 1800
    settled = pay_out(stripe_emulator, booking.listener, weeks_ahead=1)

    assert (settled.status, settled.amount, settled.stripe_transfer_id) == (Payout.Status.PAID, 0, None)
    assert debt_outstanding(listener_id=booking.listener_id) == 3000 - 1800
    assert _payable(booking.listener) == -1200
    assert_ledger_clean()

    complete_session(paid_booking(events, price="50.00", listener=booking.listener))  # listener 4500
    last = pay_out(stripe_emulator, booking.listener, weeks_ahead=2)

    assert (last.status, last.amount) == (Payout.Status.PAID, 4500 - 1200)
    assert debt_outstanding(listener_id=booking.listener_id) == 0
    assert _payable(booking.listener) == 0
    assert all(p.amount >= 0 for p in Payout.objects.all())
    assert_ledger_clean()


def test_a_dispute_lost_after_payout_claws_back_the_listener_share(stripe_emulator, events, paid_out):
    booking, payout = paid_out
    dispute = stripe_emulator.post(f"/_emulator/charges/{payment_of(booking).stripe_charge_id}/dispute")
    events.deliver_new()
    stripe_emulator.post(f"/_emulator/disputes/{dispute['id']}/close", {"outcome": "lost"})
    events.deliver_new()

    assert _claw_back_all() == [Clawback.Status.REVERSED]

    assert _transfer(payout)["amount_reversed"] == 3000
    assert ListenerPayout.objects.get(booking=booking).net_amount == 0
    assert _payable(booking.listener) == 0
    # What the app lost for good: Stripe's dispute fee.
    assert ledger.balance(ledger.DISPUTE_FEES) == 1500
    assert ledger.balance(ledger.APP_REVENUE) == 0
    assert_ledger_clean()


def test_a_crash_after_stripe_reversed_reverses_nothing_more(events, paid_out):
    """Stripe reversed the transfer but the worker died before saving; Stripe's transfer.reversed
    arrived meanwhile. The next attempt finds the reversal by its metadata and books nothing twice."""
    from billing.stripe_gateway import reversals

    booking, payout = paid_out
    _refund(payment_of(booking), 3333, events)
    clawback = Clawback.objects.get()
    reversals.transfer_reversal_create(
        clawback_id=clawback.pk, transfer_id=payout.stripe_transfer_id, amount=3000, listener_id=booking.listener_id
    )
    events.deliver_new("transfer.reversed")

    assert _claw_back_all() == [Clawback.Status.REVERSED]

    transfer = _transfer(payout)
    assert (transfer["amount_reversed"], len(transfer["reversals"]["data"])) == (3000, 1)
    clawback.refresh_from_db()
    assert clawback.stripe_transfer_reversal_id == transfer["reversals"]["data"][0]["id"]
    assert _payable(booking.listener) == 0
    assert_ledger_clean()
