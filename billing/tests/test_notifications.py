"""Billing's notifications: receipt, refund confirmation, dispute opened to operators."""

import time

import pytest
from django.core import mail
from django.db import transaction

from billing import payments
from billing.models import Dispute, Payment, Refund
from billing.notifications import dispute_opened_task, payment_receipt_task, refund_confirmation_task
from billing.tests.factories import PaymentFactory
from web.tests.support import eventually

pytestmark = pytest.mark.usefixtures("fresh_notifications")


def _wait_for_mail(count: int) -> None:
    eventually(lambda: len(mail.outbox) >= count, 10, f"{count} notification mail(s)")


@pytest.mark.django_db
def test_the_receipt_goes_to_the_talker_once():
    payment = PaymentFactory(status=Payment.Status.SUCCEEDED, stripe_payment_intent_id="pi_receipt")
    assert payment_receipt_task.run(payment.pk) is True
    assert payment_receipt_task.run(payment.pk) is False  # a redelivered task sends nothing more
    [message] = mail.outbox
    assert message.to == [payment.talker.email]
    assert "30.00 USD" in message.subject and f"booking #{payment.booking_id}" in message.subject
    assert "pi_receipt" in message.body


@pytest.mark.django_db
def test_no_receipt_for_a_payment_that_did_not_succeed():
    payment = PaymentFactory(status=Payment.Status.FAILED)
    assert payment_receipt_task.run(payment.pk) is False and mail.outbox == []


@pytest.mark.django_db
def test_the_refund_confirmation_goes_to_the_talker():
    payment = PaymentFactory(status=Payment.Status.SUCCEEDED)
    refund = Refund.objects.create(
        payment=payment, amount=1500, currency="usd", status=Refund.Status.SUCCEEDED, stripe_refund_id="re_1"
    )
    assert refund_confirmation_task.run(refund.pk) is True
    [message] = mail.outbox
    assert message.to == [payment.talker.email] and "15.00 USD" in message.subject and "re_1" in message.body


@pytest.mark.django_db
def test_a_requested_refund_is_not_confirmed_yet():
    refund = Refund.objects.create(
        payment=PaymentFactory(), amount=1500, currency="usd", status=Refund.Status.REQUESTED
    )
    assert refund_confirmation_task.run(refund.pk) is False and mail.outbox == []


@pytest.mark.django_db
def test_a_dispute_goes_to_the_operators(settings):
    settings.OPERATIONS_EMAILS = ["ops@example.com", "risk@example.com"]
    payment = PaymentFactory(status=Payment.Status.SUCCEEDED)
    dispute = Dispute.objects.create(
        payment=payment,
        stripe_dispute_id="dp_1",
        amount=3000,
        currency="usd",
        reason="fraudulent",
        status="needs_response",
    )
    assert dispute_opened_task.run(dispute.pk) is True
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "risk@example.com"]
    assert "30.00 USD" in message.subject and "dp_1" in message.body and "fraudulent" in message.body


def test_a_succeeded_payment_sends_its_receipt_through_the_worker(celery_worker):
    # given a booking waiting for its payment; when Stripe's success is applied (as the webhook does)
    payment = PaymentFactory(status=Payment.Status.PROCESSING, stripe_payment_intent_id="pi_e2e")
    with transaction.atomic():
        payments.payment_succeed(payment=Payment.objects.select_for_update().get(pk=payment.pk), charge_id="ch_1")
    # then the worker mails the receipt after the commit, once even if success is applied again
    _wait_for_mail(1)
    with transaction.atomic():
        payments.payment_succeed(payment=Payment.objects.select_for_update().get(pk=payment.pk), charge_id="ch_1")
    time.sleep(0.5)
    assert [message.to for message in mail.outbox] == [[payment.talker.email]]
