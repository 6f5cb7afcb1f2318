"""Issue 10, the payout side: what a payout transfers is decided at the transfer, under the locks,
from the earnings as they are then, whatever landed between collect and execute."""

from datetime import timedelta

import pytest

from billing import ledger
from billing.models import Payment, Refund
from billing.refunds import refund_create_for_admin
from billing.tasks import refund_create_task
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    complete_session,
    connected_listener,
    paid_booking,
    payment_of,
)
from payouts import services
from payouts.models import Clawback, ListenerPayout, Payout, Schedule
from payouts.periods import period_containing
from payouts.tests.conftest import stripe_transfers
from web.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


def _period():
    from django.utils import timezone

    return period_containing(Schedule.WEEKLY, timezone.now().date())


def _collect(stripe_emulator) -> None:
    stripe_emulator.post("/_emulator/balance/topup", {"amount": 1_000_000, "currency": "usd"})
    services.payout_run(period=_period(), execute=False)


def _execute() -> None:
    services.payout_run(period=_period())


def _refund(payment: Payment, amount: int, events: StripeEvents, *, settle: bool = True) -> Refund:
    refund = refund_create_for_admin(payment_id=payment.pk, amount=amount, reason="complaint", admin=UserFactory())
    if settle:
        refund_create_task.apply(args=[refund.pk]).get()
        events.deliver_new()
    refund.refresh_from_db()
    return refund


def _assert_totals_equal_stripe(listener) -> None:
    """What we say left for the listener (transfers less reversals) is what Stripe moved."""
    theirs = sum(t["amount"] - t["amount_reversed"] for t in stripe_transfers(listener))
    ours = sum(
        p.amount - p.amount_reversed
        for p in Payout.objects.filter(listener=listener, status__in=(Payout.Status.PAID, Payout.Status.REVERSED))
    )
    assert ours == theirs
    assert_ledger_clean()


def _earning(booking) -> ListenerPayout:
    return ListenerPayout.objects.get(booking=booking)


def test_item1_refund_between_collect_and_execute_pays_only_what_is_left(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    kept = complete_session(paid_booking(events, price="33.33", listener=listener))
    refunded = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    payout = Payout.objects.get(listener=listener)
    assert payout.amount == 3000 + 4500

    _refund(payment_of(refunded), 5000, events)
    _execute()

    payout.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 3000)
    assert [t["amount"] for t in stripe_transfers(listener)] == [3000]
    assert _earning(kept).status == ListenerPayout.Status.PAID
    assert (_earning(refunded).status, _earning(refunded).payout_id) == (ListenerPayout.Status.CANCELLED, None)
    assert not Clawback.objects.exists()
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_totals_equal_stripe(listener)


def test_item1_partial_refund_between_collect_and_execute_pays_the_rest_of_it(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)

    _refund(payment_of(booking), 2000, events)  # the listener's part of it: 1800
    _execute()

    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 4500 - 1800)
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_totals_equal_stripe(listener)


def test_item2_dispute_hold_after_collect_is_not_paid_nor_overwritten(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    disputed = complete_session(paid_booking(events, price="50.00", listener=listener))
    kept = complete_session(paid_booking(events, price="33.33", listener=listener))
    _collect(stripe_emulator)

    # The dispute's owner call, as billing.disputes makes it when charge.dispute.created lands.
    assert services.earning_hold(payment_id=payment_of(disputed).pk) == ListenerPayout.Status.PAYABLE
    _execute()

    assert [t["amount"] for t in stripe_transfers(listener)] == [3000]
    assert _earning(disputed).status == ListenerPayout.Status.HELD
    assert _earning(disputed).payout_id is None
    assert _earning(kept).status == ListenerPayout.Status.PAID
    # Won: released, and the next run pays it.
    services.earning_release(payment_id=payment_of(disputed).pk, restore_to=ListenerPayout.Status.PAYABLE)
    from django.utils import timezone

    services.payout_run(period=period_containing(Schedule.WEEKLY, timezone.now().date() + timedelta(weeks=1)))
    assert sorted(t["amount"] for t in stripe_transfers(listener)) == [3000, 4500]
    _assert_totals_equal_stripe(listener)


def test_item2_operator_hold_after_collect_is_not_paid(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)

    services.listener_payouts_hold(listener_id=listener.pk, reason="fraud review")
    _execute()

    assert stripe_transfers(listener) == []
    payout = Payout.objects.get(listener=listener)
    assert payout.status == Payout.Status.FAILED
    assert (_earning(booking).status, _earning(booking).payout_id) == (ListenerPayout.Status.PAYABLE, None)
    _assert_totals_equal_stripe(listener)


def test_item3_failed_payout_releases_its_disputed_earning_which_is_paid_once_won(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    payout = Payout.objects.get(listener=listener)
    # Claimed, then held: the hold lands while the transfer is refused (an account restriction).
    ListenerPayout.objects.filter(booking=booking).update(status=ListenerPayout.Status.HELD)
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.PROCESSING, attempts=1)
    services.payout_transfer_failed(payout_id=payout.pk, attempt=1, reason="account_invalid: restricted")

    earning = _earning(booking)
    assert (earning.status, earning.payout_id) == (ListenerPayout.Status.HELD, None)
    services.earning_release(payment_id=payment_of(booking).pk, restore_to=ListenerPayout.Status.PAYABLE)
    payout = services.payout_retry(payout_id=payout.pk)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 4500)
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500]
    _assert_totals_equal_stripe(listener)


def test_item4_refund_in_flight_holds_back_the_earning_until_it_settles(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    refund = _refund(payment_of(booking), 2500, events, settle=False)
    assert refund.status == Refund.Status.PENDING

    _collect(stripe_emulator)
    _execute()
    assert stripe_transfers(listener) == []

    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()
    _execute()
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500 - 2250]
    _assert_totals_equal_stripe(listener)


def test_item4_refund_in_flight_after_collect_holds_back_the_earning(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    _refund(payment_of(booking), 2500, events, settle=False)

    _execute()
    assert stripe_transfers(listener) == []
    assert _earning(booking).payout_id is None
    _assert_totals_equal_stripe(listener)


def test_item1_refund_while_the_transfer_is_in_flight_is_clawed_back_after_it_is_recorded(stripe_emulator, events):
    from payouts.services import transfers

    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    payout = Payout.objects.get(listener=listener)
    real_record = transfers.payouts_transfer_record

    def refund_lands_while_stripe_answers(**kwargs):
        # Another worker applies a refund after the transfer was claimed, before it is recorded.
        _refund(payment_of(booking), 5000, events)
        return real_record(**kwargs)

    transfers.payouts_transfer_record = refund_lands_while_stripe_answers
    try:
        _execute()
    finally:
        transfers.payouts_transfer_record = real_record

    payout.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 4500)
    clawback = Clawback.objects.get()
    assert (clawback.amount, clawback.status) == (4500, Clawback.Status.PENDING)
    assert services.clawback_execute(clawback_id=clawback.pk).status == Clawback.Status.REVERSED
    payout.refresh_from_db()
    assert payout.amount_reversed == 4500
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_totals_equal_stripe(listener)


def test_item9_reversal_before_we_recorded_the_transfer_is_applied_when_it_is_recorded(stripe_emulator, events):
    from billing.stripe_gateway import connect as gateway

    listener = connected_listener(stripe_emulator)
    complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    payout = Payout.objects.get(listener=listener)
    # Stripe made the transfer, the worker died before recording it, and an operator reversed part.
    long_ago = payout.created_at - timedelta(hours=1)
    Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.PROCESSING, attempts=1, transfer_sent_at=long_ago)
    transfer = gateway.transfer_create(
        payout_id=payout.pk,
        amount=4500,
        currency="usd",
        destination=listener.stripe_listener_account.stripe_account_id,
        listener_id=listener.pk,
        idempotency_key=services.transfer_idempotency_key(payout_id=payout.pk, attempt=1),
    )
    gateway.transfer_reversal_create(transfer_id=transfer["id"], amount=1000, idempotency_key="operator-1")
    events.deliver_new()  # transfer.reversed: no payout has this transfer yet

    services.payouts_sweep_stuck(older_than=timedelta(minutes=1))

    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer_id, payout.amount_reversed) == (
        Payout.Status.PAID,
        transfer["id"],
        1000,
    )
    _assert_totals_equal_stripe(listener)


def _operator_reverses(payout: Payout, amount: int, events: StripeEvents) -> None:
    """An operator reverses part of the transfer on Stripe's dashboard; Stripe sends transfer.reversed."""
    from billing.stripe_gateway import connect as gateway

    gateway.transfer_reversal_create(
        transfer_id=payout.stripe_transfer_id, amount=amount, idempotency_key=f"dashboard-{payout.pk}-{amount}"
    )
    events.deliver_new()


def test_item6_operator_reversal_is_recorded_on_the_payout_not_owed_to_the_listener(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    _execute()
    payout = Payout.objects.get(listener=listener)

    _operator_reverses(payout, 1000, events)

    payout.refresh_from_db()
    assert (payout.amount_reversed, payout.amount_reversed_unrequested) == (1000, 1000)
    assert "did not ask for" in payout.failure_reason
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    assert ledger.balance(ledger.UNREQUESTED_REVERSALS) == 1000
    # Redelivered, it books nothing more.
    events.deliver_new()
    _assert_totals_equal_stripe(listener)


def test_item7_refund_after_the_payout_was_reversed_makes_no_debt(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    _execute()
    payout = Payout.objects.get(listener=listener)
    _operator_reverses(payout, 4500, events)

    _refund(payment_of(booking), 5000, events)
    clawback = Clawback.objects.get()
    assert services.clawback_execute(clawback_id=clawback.pk).status == Clawback.Status.REVERSED
    assert services.debt_outstanding(listener_id=listener.pk) == 0
    assert ledger.balance(ledger.UNREQUESTED_REVERSALS) == 0

    # The listener's next session is paid in full.
    later = complete_session(paid_booking(events, price="33.33", listener=listener))
    from django.utils import timezone

    services.payout_run(period=period_containing(Schedule.WEEKLY, timezone.now().date() + timedelta(weeks=1)))
    assert _earning(later).status == ListenerPayout.Status.PAID
    assert Payout.objects.get(earnings__booking=later).amount == 3000
    _assert_totals_equal_stripe(listener)


def test_item8_refund_failing_before_its_clawback_ran_cancels_the_clawback(stripe_emulator, events):
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    _execute()
    refund = _refund(payment_of(booking), 5000, events)
    clawback = Clawback.objects.get()
    assert clawback.status == Clawback.Status.PENDING

    # The card refund fails later (Stripe sends charge.refund.updated / refund.failed).
    stripe_emulator.post(f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {})
    events.deliver_new()

    clawback.refresh_from_db()
    assert clawback.status == Clawback.Status.CANCELLED
    assert services.clawback_execute(clawback_id=clawback.pk).status == Clawback.Status.CANCELLED
    transfer = stripe_transfers(listener)[0]
    assert (transfer["amount"], transfer["amount_reversed"]) == (4500, 0)
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_totals_equal_stripe(listener)


def _next_week_run() -> None:
    from django.utils import timezone

    services.payout_run(period=period_containing(Schedule.WEEKLY, timezone.now().date() + timedelta(weeks=1)))


def test_item8_refund_failing_after_its_clawback_reversed_the_transfer_is_paid_with_the_next_payout(
    stripe_emulator, events
):
    from payouts.models import ListenerCredit

    # given a paid-out earning whose refund's clawback reversed the transfer
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    _execute()
    refund = _refund(payment_of(booking), 5000, events)
    clawback = Clawback.objects.get()
    assert services.clawback_execute(clawback_id=clawback.pk).status == Clawback.Status.REVERSED
    events.deliver_new()
    assert stripe_transfers(listener)[0]["amount_reversed"] == 4500

    # when the card refund fails (the money stays with us)
    stripe_emulator.post(f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {})
    events.deliver_new()

    # then the listener is owed the 45.00 again, once, and ledger_check agrees
    credit = ListenerCredit.objects.get()
    assert (credit.listener_id, credit.amount, credit.payout_id) == (listener.pk, 4500, None)
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 4500
    assert_ledger_clean()
    events.deliver_new()  # nothing new; a redelivery of the failure books nothing more
    assert ListenerCredit.objects.count() == 1

    # and the next payout run pays it, with no new session, exactly once
    _next_week_run()
    _next_week_run()
    credit.refresh_from_db()
    assert credit.payout.status == Payout.Status.PAID
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500, 4500]
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_totals_equal_stripe(listener)


def test_item8_refund_failing_after_it_shrank_the_earning_before_payout_pays_the_difference(stripe_emulator, events):
    # given a partial refund before the payout (the listener was paid 27.00 of 45.00)
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    refund = _refund(payment_of(booking), 2000, events)
    _collect(stripe_emulator)
    _execute()
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]

    # when that refund fails, and the listener has a new session
    stripe_emulator.post(f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {})
    events.deliver_new()
    later = complete_session(paid_booking(events, price="33.33", listener=listener))
    assert_ledger_clean()

    # then the next payout pays the new session and the 18.00 owed again
    _next_week_run()
    assert Payout.objects.get(earnings__booking=later).amount == 3000 + 1800
    assert sorted(t["amount"] for t in stripe_transfers(listener)) == [2700, 4800]
    _assert_totals_equal_stripe(listener)


def test_item8_refund_failing_after_its_clawback_used_an_operator_reversal_gives_it_back_to_review(
    stripe_emulator, events
):
    from payouts.models import ListenerCredit

    # given an operator's reversal that a refund's clawback was settled from
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    _collect(stripe_emulator)
    _execute()
    payout = Payout.objects.get(listener=listener)
    _operator_reverses(payout, 4500, events)
    refund = _refund(payment_of(booking), 5000, events)
    assert services.clawback_execute(clawback_id=Clawback.objects.get().pk).status == Clawback.Status.REVERSED
    assert ledger.balance(ledger.UNREQUESTED_REVERSALS) == 0

    # when the refund fails
    stripe_emulator.post(f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {})
    events.deliver_new()

    # then the operator's reversal is back under review, and the listener is not paid it automatically
    assert not ListenerCredit.objects.exists()
    assert ledger.balance(ledger.UNREQUESTED_REVERSALS) == 4500
    payout.refresh_from_db()
    assert payout.unrequested_applied == 0
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_totals_equal_stripe(listener)
