"""The whole path with every part running: the emulator delivers its signed webhooks to our endpoint
(duplicated and reordered on purpose), a real Celery worker processes them and runs the refund and
clawback tasks, and the books end exact."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import ledger, stripe_gateway
from billing.models import Payment, WebhookEvent
from billing.refunds import refund_create_for_admin
from billing.tests.refund_support import (
    assert_ledger_clean,
    complete_session,
    connected_listener,
    pay_out,
)
from booking import services as booking_services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts.models import Clawback, ListenerPayout, Payout
from web.testing import webhooks_register
from web.tests.factories import TalkerFactory, UserFactory
from web.tests.support import eventually

pytestmark = pytest.mark.slow


def _settled(stripe_emulator) -> bool:
    """Every delivery made and every stored event done (none pending or running)."""
    stripe_emulator.flush_webhooks(timeout=10)
    return not WebhookEvent.objects.exclude(
        status__in=(WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)
    ).exists()


@pytest.fixture
def wired(stripe_emulator, live_server, celery_worker):
    webhooks_register(stripe_emulator, live_server.url)
    stripe_emulator.post("/_emulator/config", {"chaos_duplicate": 0.5, "chaos_reorder": 0.5})
    return stripe_emulator


def _paid_out_booking(emulator) -> Booking:
    listener = connected_listener(emulator)
    booking = booking_services.booking_create(
        talker=TalkerFactory(),
        listener_id=listener.pk,
        package_id=PackageFactory(price="33.33").pk,
        scheduled_at=timezone.now() + timedelta(days=2),
    )
    intent_id = eventually(
        lambda: Payment.objects.get(booking=booking).stripe_payment_intent_id, what="the PaymentIntent worker"
    )
    stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.confirm, intent_id, params={"payment_method": "pm_card_visa"}
    )
    eventually(
        lambda: Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED, what="payment_intent.succeeded"
    )
    complete_session(booking)
    payout = pay_out(emulator, listener)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 3000)
    return booking


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cause", ["refund", "lost_dispute"])
def test_taking_money_back_after_payout_reverses_the_transfer_once_through_the_real_worker(wired, cause):
    booking = _paid_out_booking(wired)
    payment = Payment.objects.get(booking=booking)

    if cause == "refund":
        refund_create_for_admin(payment_id=payment.pk, amount=3333, reason="never happened", admin=UserFactory())
    else:
        dispute = wired.post(f"/_emulator/charges/{payment.stripe_charge_id}/dispute")
        eventually(lambda: _settled(wired), what="the dispute's events")
        wired.post(f"/_emulator/disputes/{dispute['id']}/close", {"outcome": "lost"})

    clawback = eventually(
        lambda: Clawback.objects.filter(status=Clawback.Status.REVERSED).first(), what="the clawback worker"
    )
    eventually(lambda: _settled(wired), what="every webhook processed")

    payout = Payout.objects.get(listener=booking.listener)
    transfer = stripe_gateway.as_dict(
        stripe_gateway.call(stripe_gateway.client().v1.transfers.retrieve, payout.stripe_transfer_id)
    )
    assert (transfer["amount_reversed"], len(transfer["reversals"]["data"])) == (3000, 1)
    assert clawback.stripe_transfer_reversal_id == transfer["reversals"]["data"][0]["id"]
    assert Clawback.objects.count() == 1
    assert (payout.amount_reversed, payout.status) == (3000, Payout.Status.REVERSED)
    assert ListenerPayout.objects.get(booking=booking).net_amount == 0
    assert ledger.balance(ledger.listener_payable(booking.listener_id)) == 0
    assert ledger.balance(ledger.APP_REVENUE) == 0
    assert_ledger_clean()
