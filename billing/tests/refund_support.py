"""Helpers for the refund, dispute, cancellation and clawback tests: paid bookings on the emulator,
Stripe's own events delivered signed to our webhook intake, and the ledger's invariants."""

from __future__ import annotations

import io
import time
from datetime import timedelta

from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import ledger, payments, stripe_gateway
from billing.models import Payment
from billing.tests.stripe_events import deliver
from booking import services as booking_services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from web.tests.factories import ListenerFactory, TalkerFactory


class StripeEvents:
    """The emulator's events, in the order Stripe created them, each handed out once."""

    def __init__(self):
        self.seen: set[str] = set()

    def new(self, *types: str) -> list[dict]:
        listing = stripe_gateway.call(stripe_gateway.client().v1.events.list, params={"limit": 100})
        events = [stripe_gateway.as_dict(event) for event in listing.auto_paging_iter()]
        events.sort(key=lambda event: (event["created"], event["id"]))
        fresh = [e for e in events if e["id"] not in self.seen and (not types or e["type"] in types)]
        self.seen.update(e["id"] for e in fresh)
        return fresh

    def deliver_new(self, *types: str) -> list[dict]:
        fresh = self.new(*types)
        for event in fresh:
            deliver(event)
        return fresh


def paid_booking(
    events: StripeEvents, *, price: str = "30.00", hours_ahead: float = 72, listener=None, talker=None
) -> Booking:
    """A booking paid with a card on the emulator, confirmed by Stripe's own events."""
    booking = booking_services.booking_create(
        talker=talker or TalkerFactory(),
        listener_id=(listener or ListenerFactory()).pk,
        package_id=PackageFactory(price=price).pk,
        scheduled_at=timezone.now() + timedelta(hours=hours_ahead),
    )
    payment = payments.payment_intent_create(payment_id=booking.payment.pk)
    stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.confirm,
        payment.stripe_payment_intent_id,
        params={"payment_method": "pm_card_visa"},
    )
    events.deliver_new()
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED, booking.status
    return booking


def shift_schedule(booking: Booking, *, hours_from_now: float) -> Booking:
    """Move a booked session in time (the clock cannot be moved across processes)."""
    scheduled_at = timezone.now() + timedelta(hours=hours_from_now)
    Booking.objects.filter(pk=booking.pk).update(
        scheduled_at=scheduled_at, ends_at=scheduled_at + timedelta(minutes=booking.package.duration_minutes)
    )
    booking.refresh_from_db()
    return booking


def split_balances(booking: Booking) -> dict[str, int]:
    return ledger.balances(
        [ledger.PLATFORM_CASH, ledger.APP_REVENUE, ledger.DISPUTE_FEES, ledger.listener_payable(booking.listener_id)]
    )


def assert_ledger_clean() -> None:
    """`manage.py ledger_check` exits non-zero (CommandError) on any broken invariant."""
    report = io.StringIO()
    try:
        call_command("ledger_check", stdout=report)
    except CommandError as error:
        raise AssertionError(f"ledger_check failed:\n{report.getvalue()}") from error


def payment_of(booking: Booking) -> Payment:
    return Payment.objects.get(booking=booking)


def connected_listener(stripe_emulator):
    """A listener with an onboarded Express account on the emulator, as our Connect flow makes it."""
    from billing.stripe_gateway import connect
    from payouts import services as payout_services

    listener = ListenerFactory()
    account = payout_services.connect_account_get_or_create(listener=listener)
    stripe_emulator.post(f"/_emulator/accounts/{account.stripe_account_id}/onboard")
    payout_services.connect_account_sync(
        account=connect.account_retrieve(account.stripe_account_id), event_created=int(time.time())
    )
    return listener


def complete_session(booking: Booking, *, hold_passed: bool = True) -> Booking:
    """The session takes place now (its schedule moved to now, its run back-dated to its full length),
    and by default its payout hold has passed, so the earning is payable at once."""
    from payouts.models import ListenerPayout

    shift_schedule(booking, hours_from_now=0)
    booking_services.booking_start(booking_id=booking.pk, user=booking.talker)
    Booking.objects.filter(pk=booking.pk).update(
        started_at=timezone.now() - timedelta(minutes=booking.package.duration_minutes)
    )
    completed = booking_services.booking_complete(booking_id=booking.pk, user=booking.listener)
    if hold_passed:
        ListenerPayout.objects.filter(booking=completed, payable_at__isnull=False).update(
            payable_at=completed.completed_at
        )
    return completed


def pay_out(stripe_emulator, listener, *, weeks_ahead: int = 0):
    """Run the weekly payouts of this week (or a later one: a paid week takes no more earnings), the
    platform balance topped up first, and return the listener's latest payout."""
    from payouts import services as payout_services
    from payouts.models import Payout, Schedule
    from payouts.periods import period_containing

    stripe_emulator.post("/_emulator/balance/topup", {"amount": 1_000_000, "currency": "usd"})
    day = timezone.now().date() + timedelta(weeks=weeks_ahead)
    payout_services.payout_run(period=period_containing(Schedule.WEEKLY, day))
    return Payout.objects.filter(listener=listener).order_by("-id").first()


def drain_connected_account(listener) -> None:
    """The listener moved their Stripe balance to their bank: nothing is left to reverse a transfer from."""
    account_id = listener.stripe_listener_account.stripe_account_id
    balance = stripe_gateway.call(
        stripe_gateway.client().v1.balance.retrieve, options=stripe_gateway.options(stripe_account=account_id)
    )
    available = sum(entry.amount for entry in balance.available if entry.currency == "usd")
    if available > 0:
        stripe_gateway.call(
            stripe_gateway.client().v1.payouts.create,
            params={"amount": available, "currency": "usd"},
            options=stripe_gateway.options(stripe_account=account_id),
        )
