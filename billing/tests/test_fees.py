"""Stripe's processing fees (issue 10, "Also"): booked from the charge's balance transaction, kept by
Stripe on refunds, compared with Stripe by ledger_check, so `platform:cash` is what Stripe holds."""

from __future__ import annotations

import pytest

from billing import fees, ledger, stripe_gateway
from billing.refunds import refund_create_for_admin
from billing.tasks import payment_fees_book_task, refund_create_task
from billing.tests.refund_support import StripeEvents, assert_ledger_clean, paid_booking, payment_of
from web.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(stripe_emulator):
    return StripeEvents()


def _stripe_balance() -> int:
    balance = stripe_gateway.as_dict(stripe_gateway.call(stripe_gateway.client().v1.balance.retrieve))
    return sum(entry["amount"] for entry in balance["available"] + balance["pending"] if entry["currency"] == "usd")


def _book_fees(payment) -> int:
    return payment_fees_book_task.apply(args=[payment.pk]).get()


def test_the_charge_fee_is_booked_once_from_its_balance_transaction(events):
    # given a paid booking of 50.00 (Stripe takes 2.9 % + 30 ¢: 175)
    payment = payment_of(paid_booking(events, price="50.00"))

    # when the fee worker runs, twice
    assert _book_fees(payment) == 1
    assert _book_fees(payment) == 0

    # then the fee is the platform's cost and the split still comes from the gross price
    assert ledger.balance(ledger.PROCESSING_FEES) == 175
    assert ledger.balance(ledger.PLATFORM_CASH) == 5000 - 175 == _stripe_balance()
    assert ledger.balance(ledger.APP_REVENUE) == 500
    assert ledger.balance(ledger.listener_payable(payment.booking.listener_id)) == 4500
    assert not fees.payments_fees_unbooked().exists()
    assert_ledger_clean()


def test_a_refund_does_not_give_the_fee_back(events):
    payment = payment_of(paid_booking(events, price="50.00"))
    _book_fees(payment)

    refund = refund_create_for_admin(payment_id=payment.pk, amount=5000, reason="complaint", admin=UserFactory())
    refund_create_task.apply(args=[refund.pk]).get()
    events.deliver_new()
    assert _book_fees(payment) == 0

    assert ledger.balance(ledger.PROCESSING_FEES) == 175
    assert ledger.balance(ledger.PLATFORM_CASH) == -175 == _stripe_balance()
    assert_ledger_clean()


def test_ledger_check_reports_a_fee_stripe_took_that_was_never_booked(events, monkeypatch):
    # given a payment whose fee task was lost, past the grace period
    payment = payment_of(paid_booking(events, price="50.00"))
    monkeypatch.setattr(fees, "GRACE", fees.GRACE * 0)

    # then ledger_check reports it, and the sweeper books it
    with pytest.raises(AssertionError, match="Stripe took a fee of 175, not booked"):
        assert_ledger_clean()
    assert list(fees.payments_fees_unbooked()) == [payment]
    assert fees.payment_fees_sweep() == 1
    _book_fees(payment)
    assert_ledger_clean()


def test_a_charge_without_its_balance_transaction_yet_is_asked_again(events):
    payment = payment_of(paid_booking(events, price="50.00"))
    type(payment).objects.filter(pk=payment.pk).update(stripe_charge_id="")

    with pytest.raises(fees.FeesNotSettled):
        fees.payment_fees_book(payment_id=payment.pk)


@pytest.mark.usefixtures("fresh_notifications")
def test_a_succeeded_payment_s_one_follow_up_sends_the_receipt_and_books_the_fee_once(events):
    # given a paid booking (its follow-up, published on commit, is run here by hand as well)
    from django.core import mail

    from billing.tasks import payment_succeeded_followup_task

    payment = payment_of(paid_booking(events, price="50.00"))

    # when the follow-up runs twice (a redelivered message)
    payment_succeeded_followup_task.apply(args=[payment.pk]).get()
    payment_succeeded_followup_task.apply(args=[payment.pk]).get()

    # then one receipt went to the talker and the fee is booked once
    assert [message.to for message in mail.outbox if "receipt" in message.subject] == [[payment.talker.email]]
    assert ledger.balance(ledger.PROCESSING_FEES) == 175
    assert not fees.payments_fees_unbooked().exists()
    assert_ledger_clean()


@pytest.mark.usefixtures("fresh_notifications")
def test_a_failing_receipt_is_handed_to_its_own_task_and_the_fee_is_still_booked(events, monkeypatch):
    from billing import notifications
    from billing.tasks import payment_succeeded_followup_task

    payment = payment_of(paid_booking(events, price="50.00"))
    handed = []

    def mail_down(*_args, **_kwargs):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr(notifications, "notification_send_once", mail_down)
    monkeypatch.setattr(
        "billing.tasks.enqueue_or_leave_to_sweeper", lambda name, object_id, what: handed.append((name, object_id))
    )

    assert payment_succeeded_followup_task.apply(args=[payment.pk]).get() == 1
    assert handed == [(notifications.RECEIPT, payment.pk)]
    assert ledger.balance(ledger.PROCESSING_FEES) == 175


def test_the_fee_read_is_one_stripe_request_and_still_sees_every_refund_past_the_first_page(events, monkeypatch):
    import stripe

    from billing.stripe_gateway.fees import charge_balance_transactions

    lists: list[dict] = []
    real_list = stripe.RefundService.list
    monkeypatch.setattr(
        stripe.RefundService,
        "list",
        lambda self, *args, **kwargs: lists.append(kwargs) or real_list(self, *args, **kwargs),
    )
    gateway = stripe_gateway.client().v1.refunds
    payment = payment_of(paid_booking(events, price="50.00"))
    made = [
        stripe_gateway.call(gateway.create, params={"charge": payment.stripe_charge_id, "amount": 100}).id
        for _ in range(12)
    ]

    charge_txn, refund_txns = charge_balance_transactions(payment.stripe_charge_id)

    assert charge_txn is not None and charge_txn["fee"] == 175
    expected = {stripe_gateway.call(gateway.retrieve, refund_id).balance_transaction for refund_id in made}
    assert sorted(txn["id"] for txn in refund_txns) == sorted(expected)
    assert len(lists) == 1  # 10 refunds came expanded with the charge, one page brought the other 2

    unrefunded = payment_of(paid_booking(events, price="30.00"))
    lists.clear()
    charge_balance_transactions(unrefunded.stripe_charge_id)
    assert lists == []  # no refunds: the charge request alone


@pytest.mark.usefixtures("fresh_notifications")
def test_once_the_charge_fee_is_booked_neither_charge_updated_nor_the_follow_up_asks_stripe_again(
    events, monkeypatch, django_capture_on_commit_callbacks
):
    import stripe

    from billing.models import LedgerTransaction
    from billing.tasks import payment_succeeded_followup_task
    from billing.tests.stripe_events import stripe_event
    from billing.webhooks.fees import handle_charge_updated

    # given a paid booking whose fee was booked (charge.updated came first, the follow-up is a retry)
    payment = payment_of(paid_booking(events, price="50.00"))
    assert _book_fees(payment) == 1
    charge = stripe_gateway.as_dict(
        stripe_gateway.call(stripe_gateway.client().v1.charges.retrieve, payment.stripe_charge_id)
    )
    reads: list = []
    real_retrieve = stripe.ChargeService.retrieve
    monkeypatch.setattr(
        stripe.ChargeService,
        "retrieve",
        lambda self, *args, **kwargs: reads.append(args) or real_retrieve(self, *args, **kwargs),
    )

    # when Stripe says the charge changed again, and the follow-up runs
    with django_capture_on_commit_callbacks() as enqueued:
        assert handle_charge_updated(stripe_event("charge.updated", charge)) == "processed"
    assert payment_succeeded_followup_task.apply(args=[payment.pk]).get() == 0

    # then nothing was enqueued, Stripe was not asked, and the fee is booked once
    assert enqueued == [] and reads == []
    assert LedgerTransaction.objects.filter(payment=payment, kind="processing_fee").count() == 1
    assert ledger.balance(ledger.PROCESSING_FEES) == 175
    assert_ledger_clean()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_follow_up_and_charge_updated_booking_the_same_fee_at_once_book_it_once(events, monkeypatch):
    from billing import payments
    from billing.models import LedgerTransaction
    from billing.tests.test_webhooks_concurrency import _at_once
    from web.tests.support import eventually

    # given a paid booking whose charge Stripe has settled, its fee not booked yet (its follow-up and
    # fee tasks kept off the broker: a worker of another test in this process would take them)
    for module in (payments, fees):
        monkeypatch.setattr(module, "enqueue_or_leave_to_sweeper", lambda *args, **kwargs: True)
    payment = payment_of(paid_booking(events, price="50.00"))
    eventually(lambda: stripe_gateway.fees.charge_balance_transactions(payment.stripe_charge_id)[0] is not None)
    assert not fees.payment_charge_fee_booked(payment_id=payment.pk)

    # when its follow-up and the fee tasks of repeated charge.updated events book the fee at the same moment
    booked = _at_once(6, lambda: fees.payment_fees_book(payment_id=payment.pk))

    # then one of them booked it, the others found it booked, and the books agree with Stripe
    assert sorted(booked) == [0, 0, 0, 0, 0, 1]
    assert LedgerTransaction.objects.filter(payment=payment, kind="processing_fee").count() == 1
    assert ledger.balance(ledger.PROCESSING_FEES) == 175
    assert ledger.balance(ledger.PLATFORM_CASH) == 5000 - 175 == _stripe_balance()
    assert_ledger_clean()
