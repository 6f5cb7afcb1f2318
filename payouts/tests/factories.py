"""Factories for earnings and payouts. `ListenerPayoutFactory` makes a completed, paid booking with its
earning and books the payment's split in the ledger the way the payment-success webhook does
(`payment-succeeded-<payment_id>`), so the ledger stays consistent with the earnings."""

from datetime import timedelta

import factory
from django.utils import timezone

from billing import ledger
from billing.models import Payment
from billing.tests.factories import PaymentFactory
from booking.models import Booking
from booking.tests.factories import BookingFactory
from payouts.models import ListenerPayout, ListenerPayoutSettings, Payout, Schedule, StripeListenerAccount
from web.tests.factories import ListenerFactory


class StripeListenerAccountFactory(factory.django.DjangoModelFactory):
    """A row only (no account on Stripe): for tests that never send a transfer."""

    class Meta:
        model = StripeListenerAccount

    listener = factory.SubFactory(ListenerFactory)
    stripe_account_id = factory.Sequence(lambda n: f"acct_test{n:012d}")
    charges_enabled = True
    payouts_enabled = True
    details_submitted = True
    transfers_capability = "active"


class ListenerPayoutSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ListenerPayoutSettings
        django_get_or_create = ("listener",)

    listener = factory.SubFactory(ListenerFactory)
    schedule = Schedule.WEEKLY


class ListenerPayoutFactory(factory.django.DjangoModelFactory):
    """An earning whose session was completed (`completed_at`, default: yesterday) and is payable
    after the configured hold; `payable_at` can be given directly."""

    class Meta:
        model = ListenerPayout
        skip_postgeneration_save = True

    class Params:
        completed_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))

    listener = factory.SubFactory(ListenerFactory)
    booking = factory.SubFactory(
        BookingFactory,
        listener=factory.SelfAttribute("..listener"),
        status=Booking.Status.COMPLETED,
        scheduled_at=factory.LazyAttributeSequence(
            lambda b, n: b.factory_parent.completed_at - timedelta(hours=1, minutes=30 * (n % 1000))
        ),
        completed_at=factory.SelfAttribute("..completed_at"),
    )
    payment = factory.SubFactory(
        PaymentFactory,
        booking=factory.SelfAttribute("..booking"),
        status=Payment.Status.SUCCEEDED,
        succeeded_at=factory.SelfAttribute("..completed_at"),
    )
    amount = factory.LazyAttribute(lambda e: e.booking.listener_amount)
    currency = "usd"
    status = ListenerPayout.Status.PENDING
    payable_at = factory.SelfAttribute("completed_at")

    @factory.post_generation
    def ledger(obj, create, extracted, **kwargs):
        if not create or extracted is False:
            return
        payment = obj.payment
        ledger.ledger_post(
            key=f"payment-succeeded-{payment.pk}",
            kind="payment_succeeded",
            currency=payment.currency,
            payment_id=payment.pk,
            booking_id=payment.booking_id,
            lines=[
                ledger.debit(ledger.PLATFORM_CASH, payment.amount),
                ledger.credit(ledger.APP_REVENUE, payment.app_fee),
                ledger.credit(ledger.listener_payable(obj.listener_id), payment.listener_amount),
            ],
        )


class PayoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payout

    listener = factory.SubFactory(ListenerFactory)
    schedule = Schedule.WEEKLY
    period_start = factory.LazyFunction(lambda: timezone.now().date() - timedelta(days=14))
    period_end = factory.LazyAttribute(lambda p: p.period_start + timedelta(days=6))
    amount = 2700
