"""Issue 10, the class is gone: a hypothesis state machine interleaves bookings and payments (paid,
declined), sessions, refunds (full, partial, failing later), disputes (opened, won, lost, partial),
operator holds, payout collect and execute as separate steps, clawbacks, an operator's transfer
reversals and fee bookings, with Stripe's events held back, reordered and delivered twice, all
against the emulator through the real SDK. After every step ledger_check is clean; once every event
is delivered our totals equal Stripe's and no listener holds more than they earned net of refunds and
lost disputes.

`make test` runs a few examples (profile `default`); `make soak` runs many more
(`TALKPAY_HYPOTHESIS_PROFILE=soak`, `TALKPAY_SOAK_EXAMPLES`), printing the seed; a failure prints the
shortest sequence of steps that reproduces it.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from billing import money, payments, stripe_gateway
from billing.models import Dispute, Payment, Refund, WebhookEvent
from billing.refunds import payment_refundable_amount, refund_create_for_admin
from billing.stripe_gateway import connect
from billing.tasks import payment_fees_book_task, refund_create_task
from billing.tests.refund_support import StripeEvents, assert_ledger_clean, complete_session, connected_listener
from billing.tests.stripe_events import deliver
from billing.webhooks.processing import webhook_event_process
from booking import services as booking_services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts import services
from payouts.invariants import check_transfers_match_stripe, fees_match_stripe
from payouts.models import Clawback, Payout, Schedule
from payouts.periods import period_containing
from payouts.tests.conftest import stripe_transfers
from stripe_emulator.testing import EmulatorError
from web.ledger_check import all_checks
from web.tests.factories import TalkerFactory, UserFactory

pytestmark = pytest.mark.django_db

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("TALKPAY_STATEFUL_EXAMPLES", "10")),
    stateful_step_count=14,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "soak",
    max_examples=int(os.environ.get("TALKPAY_SOAK_EXAMPLES", "200")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
PROFILE = os.environ.get("TALKPAY_HYPOTHESIS_PROFILE", "default")

PRICES = ("30.00", "50.00", "33.33")
EMULATOR = None
RUNS = {"examples": 0, "steps": 0}


class MoneyMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        RUNS["examples"] += 1
        EMULATOR.reset()
        # One example's rows are rolled back before the next (the emulator is reset too).
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        EMULATOR.post("/_emulator/balance/topup", {"amount": 10_000_000, "currency": "usd"})
        self.events = StripeEvents()
        self.held: list[dict] = []
        self.delivered: list[dict] = []
        self.listener = connected_listener(EMULATOR)
        self.bookings: list[int] = []
        self.week = 0
        self.slot = 0

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers ---------------------------------------------------------------------------------
    def _fetch(self) -> None:
        self.held += self.events.new()

    def _booking(self, index: int, *statuses: str) -> Booking | None:
        candidates = list(Booking.objects.filter(pk__in=self.bookings, status__in=statuses).order_by("pk"))
        return candidates[index % len(candidates)] if candidates else None

    def _payment(self, index: int) -> Payment | None:
        payments = list(
            Payment.objects.filter(booking_id__in=self.bookings, status=Payment.Status.SUCCEEDED).order_by("pk")
        )
        return payments[index % len(payments)] if payments else None

    # --- rules -----------------------------------------------------------------------------------
    @initialize(paid_out=st.integers(0, 2))
    def some_sessions_already_paid_out(self, paid_out):
        """Start, sometimes, from sessions paid out already: what comes back after a payout is reached
        in a few steps."""
        for _ in range(paid_out):
            self.book_and_pay(price="50.00", declined=False)
            self.deliver_events(order="in_order")
            self.complete(index=len(self.bookings) - 1)
        if paid_out:
            self.payout_collect()
            self.payout_execute()

    @rule(price=st.sampled_from(PRICES), declined=st.booleans())
    def book_and_pay(self, price, declined):
        self.slot += 1
        booking = booking_services.booking_create(
            talker=TalkerFactory(),
            listener_id=self.listener.pk,
            package_id=PackageFactory(price=price).pk,
            scheduled_at=timezone.now() + timedelta(hours=72 + 3 * self.slot),
        )
        self.bookings.append(booking.pk)
        payment = payments.payment_intent_create(payment_id=booking.payment.pk)
        try:
            stripe_gateway.call(
                stripe_gateway.client().v1.payment_intents.confirm,
                payment.stripe_payment_intent_id,
                params={"payment_method": "pm_card_chargeDeclined" if declined else "pm_card_visa"},
            )
        except stripe_gateway.StripeGatewayError:
            pass
        self._fetch()

    @rule(order=st.sampled_from(("in_order", "reversed", "duplicated")))
    def deliver_events(self, order):
        batch = list(reversed(self.held)) if order == "reversed" else list(self.held)
        if order == "duplicated":
            batch = batch + batch[:1] + self.delivered[-2:]
        self.held = []
        for event in batch:
            try:
                deliver(event)
            except Exception:
                pass  # retried below, as the worker's retries would
            self.delivered.append(event)
        # Retries: an event that came too early is processed again once the others are in.
        for _ in range(3):
            for pk in WebhookEvent.objects.exclude(status__in=("processed", "ignored", "flagged")).values_list(
                "pk", flat=True
            ):
                try:
                    webhook_event_process(webhook_event_id=pk, force=False)
                except Exception:
                    pass

    @rule(index=st.integers(0, 20))
    def complete(self, index):
        booking = self._booking(index, Booking.Status.CONFIRMED)
        if booking is not None:
            complete_session(booking)

    @rule(index=st.integers(0, 20), part=st.sampled_from(("full", "half")), deliver_now=st.booleans())
    def refund(self, index, part, deliver_now):
        payment = self._payment(index)
        if payment is None:
            return
        left = payment_refundable_amount(payment=payment)
        amount = left if part == "full" else money.proportion(1, 2, left)
        if amount <= 0 or Dispute.objects.filter(payment=payment).exists():
            return
        refund = refund_create_for_admin(payment_id=payment.pk, amount=amount, reason="test", admin=UserFactory())
        refund_create_task.apply(args=[refund.pk]).get()
        self._fetch()
        if deliver_now:
            self.deliver_events(order="in_order")
            self.worker_runs()

    @rule(index=st.integers(0, 20))
    def refund_fails(self, index):
        refunds = list(Refund.objects.filter(payment__booking_id__in=self.bookings, status=Refund.Status.SUCCEEDED))
        if refunds:
            refund = refunds[index % len(refunds)]
            try:
                EMULATOR.post(f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {})
            except EmulatorError:
                return  # failed on Stripe already; the event saying so has not reached us yet
            self._fetch()

    @rule(index=st.integers(0, 20), partial=st.booleans())
    def dispute_opens(self, index, partial):
        payment = self._payment(index)
        if payment is None or payment.amount_refunded or Dispute.objects.filter(payment=payment).exists():
            return
        body = {"amount": payment.amount // 2} if partial else {}
        try:
            EMULATOR.post(f"/_emulator/charges/{payment.stripe_charge_id}/dispute", body)
        except Exception:
            return
        self._fetch()

    @rule(index=st.integers(0, 20), outcome=st.sampled_from(("won", "lost")))
    def dispute_closes(self, index, outcome):
        open_ones = list(
            Dispute.objects.filter(payment__booking_id__in=self.bookings).exclude(status__in=Dispute.CLOSED)
        )
        if open_ones:
            dispute = open_ones[index % len(open_ones)]
            try:
                EMULATOR.post(f"/_emulator/disputes/{dispute.stripe_dispute_id}/close", {"outcome": outcome})
            except EmulatorError:
                return  # closed on Stripe already; the event saying so has not reached us yet
            self._fetch()

    @rule(hold=st.booleans())
    def operator_hold(self, hold):
        if hold:
            services.listener_payouts_hold(listener_id=self.listener.pk, reason="review")
        else:
            services.listener_payouts_release(listener_id=self.listener.pk)

    @rule()
    def payout_collect(self):
        self.week += 1
        period = period_containing(Schedule.WEEKLY, timezone.now().date() + timedelta(weeks=self.week))
        services.payout_run(period=period, execute=False)

    @rule()
    def payout_execute(self):
        for payout in Payout.objects.filter(listener=self.listener, status=Payout.Status.PENDING):
            services.payout_execute(payout_id=payout.pk)
        self._fetch()

    @rule()
    def worker_runs(self):
        """What the workers do once a commit enqueued it (on_commit never fires inside the test's
        transaction): send refunds, reverse transfers for clawbacks, book fees."""
        for refund in Refund.objects.filter(payment__booking_id__in=self.bookings, status=Refund.Status.PENDING):
            refund_create_task.apply(args=[refund.pk])
        for clawback in Clawback.objects.filter(listener=self.listener, status=Clawback.Status.PENDING):
            services.clawback_execute(clawback_id=clawback.pk)
        self.book_fees()
        self._fetch()

    @rule(index=st.integers(0, 20))
    def operator_reverses(self, index):
        paid = list(Payout.objects.filter(listener=self.listener, status=Payout.Status.PAID).order_by("pk"))
        if not paid:
            return
        payout = paid[index % len(paid)]
        left = payout.amount - payout.amount_reversed
        if left <= 0:
            return
        try:
            connect.transfer_reversal_create(
                transfer_id=payout.stripe_transfer_id, amount=min(left, 500), idempotency_key=f"op-{time.time_ns()}"
            )
        except stripe_gateway.PermanentStripeError:
            return  # reversed further on Stripe already (its event is still in flight)
        self._fetch()

    def book_fees(self):
        for payment in Payment.objects.filter(booking_id__in=self.bookings, status=Payment.Status.SUCCEEDED):
            payment_fees_book_task.apply(args=[payment.pk])

    # --- invariants ------------------------------------------------------------------------------
    @invariant()
    def books_are_clean(self):
        RUNS["steps"] += 1
        if not self.held:
            assert_ledger_clean()
            return
        # Events Stripe sent that have not reached us yet: the comparisons with Stripe wait for them
        # (they disagree until then, as they would in production); our own books must hold anyway.
        problems = [
            problem
            for check in all_checks()
            if check not in (fees_match_stripe, check_transfers_match_stripe)
            for problem in check()
        ]
        assert problems == []

    @invariant()
    def totals_equal_stripe_once_events_are_in(self):
        if self.held:
            return
        ours = sum(
            p.amount - p.amount_reversed
            for p in Payout.objects.filter(
                listener=self.listener, status__in=(Payout.Status.PAID, Payout.Status.REVERSED)
            )
        )
        transfers = stripe_transfers(self.listener)
        theirs = sum(t["amount"] - t["amount_reversed"] for t in transfers)
        assert ours == theirs
        earned = 0
        for payment in Payment.objects.filter(booking_id__in=self.bookings, status=Payment.Status.SUCCEEDED):
            charge = stripe_gateway.as_dict(
                stripe_gateway.call(stripe_gateway.client().v1.charges.retrieve, payment.stripe_charge_id)
            )
            assert payment.amount_refunded == charge["amount_refunded"], payment.pk
            lost = sum(d.amount for d in Dispute.objects.filter(payment=payment, status=Dispute.Status.LOST))
            gone = min(payment.amount, charge["amount_refunded"] + lost)
            earned += payment.listener_amount - (gone - money.proportion(gone, payment.amount, payment.app_fee))
        # Being clawed back: a pending clawback waits for its worker, a debt is netted from the next payouts.
        owed_back = sum(
            c.amount - c.amount_recovered
            for c in Clawback.objects.filter(
                listener=self.listener, status__in=(Clawback.Status.PENDING, Clawback.Status.DEBT)
            )
        )
        # Never more than earned net of refunds and lost disputes (a debt is netted from the next payouts).
        assert theirs - owed_back <= earned, (theirs, owed_back, earned)


def test_money_stays_right_whatever_the_interleaving(stripe_emulator):
    global EMULATOR
    EMULATOR = stripe_emulator
    RUNS.update(examples=0, steps=0)
    started = time.monotonic()
    run_state_machine_as_test(MoneyMachine, settings=settings.get_profile(PROFILE))
    print(
        f"\nmoney state machine ({PROFILE}): {RUNS['examples']} examples, {RUNS['steps']} steps, "
        f"{time.monotonic() - started:.1f} s"
    )
