"""A lost webhook is recovered by the periodic reconciliation: payments stuck in a non-final state are
read from Stripe (the emulator, through the real SDK) and moved as the webhook would have moved them."""

from datetime import timedelta

import pytest
import stripe
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from billing import ledger, payments
from billing.models import LedgerTransaction, Payment
from billing.reconciliation import payments_reconcile
from billing.tasks import payment_reconcile_task
from booking import services as booking_services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts.models import ListenerPayout
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkout(stripe_emulator):
    """`checkout(card)`: a booking whose PaymentIntent the talker's browser confirms with `card`,
    as Stripe.js does (publishable key + client secret). No webhook endpoint is registered: every
    event is lost."""
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory(price="50.00")
    browser = stripe_emulator.stripe_client(api_key=settings.STRIPE_PUBLISHABLE_KEY)
    hours = iter(range(24, 1000))

    def pay(card: str) -> Payment:
        booking = booking_services.booking_create(
            talker=talker,
            listener_id=listener.pk,
            package_id=package.pk,
            scheduled_at=timezone.now() + timedelta(hours=next(hours)),
        )
        payment = payments.payment_intent_create(payment_id=booking.payment.pk)
        try:
            browser.v1.payment_intents.confirm(
                payment.stripe_payment_intent_id,
                params={"payment_method": card, "client_secret": payment.client_secret},
            )
        except stripe.CardError:
            pass  # the browser shows the decline; our server only learns it from Stripe
        return payment

    return pay


def _reconcile_now(settings_fixture) -> dict:
    settings_fixture.PAYMENT_RECONCILE_AFTER_SECONDS = 0
    return payment_reconcile_task.apply().get()


def test_a_payment_whose_success_webhook_was_lost_is_recovered(checkout, settings):
    payment = checkout("pm_card_visa")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.REQUIRES_PAYMENT_METHOD

    counts = _reconcile_now(settings)

    payment.refresh_from_db()
    assert counts["changed"] == 1
    assert payment.status == Payment.Status.SUCCEEDED and payment.stripe_charge_id.startswith("ch_")
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    assert LedgerTransaction.objects.filter(key=f"payment-succeeded-{payment.pk}").exists()
    assert ListenerPayout.objects.get(payment=payment).amount == 4500
    assert ledger.balance(ledger.APP_REVENUE) == 500
    call_command("ledger_check")


def test_declines_and_3d_secure_are_mirrored_and_a_later_success_recovered(checkout, settings, stripe_emulator):
    declined = checkout("pm_card_chargeDeclinedInsufficientFunds")
    challenged = checkout("pm_card_authenticationRequired")

    _reconcile_now(settings)

    declined.refresh_from_db()
    challenged.refresh_from_db()
    assert (declined.status, declined.failure_code) == (Payment.Status.REQUIRES_PAYMENT_METHOD, "insufficient_funds")
    assert declined.failure_message
    assert challenged.status == Payment.Status.REQUIRES_ACTION

    stripe_emulator.post(
        f"/_emulator/payment_intents/{challenged.stripe_payment_intent_id}/3ds", {"outcome": "succeed"}
    )
    _reconcile_now(settings)

    challenged.refresh_from_db()
    assert challenged.status == Payment.Status.SUCCEEDED
    assert not LedgerTransaction.objects.filter(payment=declined).exists()
    assert LedgerTransaction.objects.filter(payment=challenged).count() == 1


def test_only_payments_waiting_longer_than_the_setting_and_younger_than_a_month_are_asked_about(checkout, settings):
    payment = checkout("pm_card_visa")
    settings.PAYMENT_RECONCILE_AFTER_SECONDS = 900

    assert payments_reconcile()["checked"] == 0

    Payment.objects.filter(pk=payment.pk).update(
        updated_at=timezone.now() - timedelta(seconds=901), created_at=timezone.now() - timedelta(days=31)
    )
    assert payments_reconcile()["checked"] == 0  # a checkout abandoned a month ago is left alone

    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=29))
    assert payments_reconcile() == {"checked": 1, "changed": 1, "errors": 0}
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED


def test_a_stripe_outage_during_reconciliation_is_counted_and_retried_next_run(checkout, settings, stripe_emulator):
    payment = checkout("pm_card_visa")
    stripe_emulator.fault("500", count=10)

    first = _reconcile_now(settings)
    stripe_emulator.clear_faults()
    second = _reconcile_now(settings)

    assert (first["errors"], second["changed"]) == (1, 1)
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
