"""`manage.py ledger_check` passes on books the webhooks kept, and fails, with a report, on books
someone corrupted. On PostgreSQL the database itself refuses unbalanced or edited ledger rows, so a
corruption has to bypass its triggers (`session_replication_role = replica`)."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, InternalError, connection, transaction

from billing import ledger, stripe_gateway
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction, Payment
from billing.stripe_gateway import webhook_reads
from billing.tests.factories import PaymentFactory
from billing.tests.stripe_events import (
    deliver,
    intent_confirm,
    intent_event,
    intent_payment,
    stripe_event,
)
from payouts.models import ListenerPayout

pytestmark = pytest.mark.postgres


def _paid_and_partly_refunded() -> Payment:
    """Paid and partly refunded on Stripe (the emulator), booked from Stripe's events."""
    payment = intent_payment()
    charge_id = intent_confirm(payment)["latest_charge"]["id"]
    deliver(intent_event("payment_intent.succeeded", payment))
    stripe_gateway.call(stripe_gateway.client().v1.refunds.create, params={"charge": charge_id, "amount": 1234})
    deliver(stripe_event("charge.refunded", webhook_reads.charge_retrieve(charge_id)))
    return payment


def _ledger_check() -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("ledger_check", stdout=out)
    except CommandError as error:
        return False, out.getvalue() + str(error)
    return True, out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_books_kept_by_the_webhooks_pass(stripe_emulator):
    _paid_and_partly_refunded()

    ok, report = _ledger_check()

    assert ok, report
    assert "ledger clean" in report


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_an_unbalanced_or_edited_ledger(stripe_emulator):
    payment = _paid_and_partly_refunded()
    txn = LedgerTransaction.objects.get(key=f"payment-succeeded-{payment.pk}")
    cash = LedgerAccount.objects.get(code=ledger.PLATFORM_CASH)

    with pytest.raises(IntegrityError):
        with transaction.atomic():
            LedgerEntry.objects.create(transaction=txn, account=cash, amount=1)
    with pytest.raises((IntegrityError, InternalError)):
        with transaction.atomic():
            LedgerEntry.objects.filter(transaction=txn).update(amount=1)

    assert sum(txn.entries.values_list("amount", flat=True)) == 0


def _corrupt(sql: str, params: list) -> None:
    """Write behind the ledger's guards, as only a superuser at a psql prompt could."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_transaction_written_behind_the_triggers_fails_the_check(stripe_emulator):
    payment = _paid_and_partly_refunded()
    txn = LedgerTransaction.objects.get(key=f"payment-succeeded-{payment.pk}")
    cash = LedgerAccount.objects.get(code=ledger.PLATFORM_CASH)

    _corrupt(
        "INSERT INTO billing_ledgerentry (transaction_id, account_id, amount) VALUES (%s, %s, %s)", [txn.pk, cash.pk, 7]
    )
    ok, report = _ledger_check()

    assert not ok
    assert f"transaction {txn.key}: entries sum to 7, not 0" in report
    assert f"payment {payment.pk}: split booked as" in report


@pytest.mark.django_db(transaction=True)
def test_a_split_moved_between_accounts_fails_the_check(stripe_emulator):
    """Balanced, but wrong: 1 cent of the listener's share booked as app revenue."""
    payment = _paid_and_partly_refunded()
    txn = LedgerTransaction.objects.get(key=f"payment-succeeded-{payment.pk}")
    revenue = LedgerAccount.objects.get(code=ledger.APP_REVENUE)
    payable = LedgerAccount.objects.get(code=ledger.listener_payable(payment.booking.listener_id))

    _corrupt(
        "UPDATE billing_ledgerentry SET amount = amount - 1 WHERE transaction_id = %s AND account_id = %s",
        [txn.pk, revenue.pk],
    )
    _corrupt(
        "UPDATE billing_ledgerentry SET amount = amount + 1 WHERE transaction_id = %s AND account_id = %s",
        [txn.pk, payable.pk],
    )
    ok, report = _ledger_check()

    assert not ok
    assert f"payment {payment.pk}: split booked as" in report
    assert f"listener {payment.booking.listener_id}: ledger payable" in report


@pytest.mark.django_db(transaction=True)
def test_an_earning_that_disagrees_with_the_ledger_or_a_missing_split_fails_the_check(stripe_emulator):
    payment = _paid_and_partly_refunded()
    other = PaymentFactory(status=Payment.Status.SUCCEEDED)  # succeeded, but never booked

    ListenerPayout.objects.filter(payment=payment).update(amount_reversed=0)
    ok, report = _ledger_check()

    assert not ok
    assert f"listener {payment.booking.listener_id}: ledger payable" in report
    assert f"payment {other.pk} succeeded but its split is not booked" in report


@pytest.mark.django_db(transaction=True)
def test_a_disabled_ledger_trigger_fails_the_check(stripe_emulator):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_ledgerentry DISABLE TRIGGER billing_ledgerentry_immutable")
    try:
        ok, report = _ledger_check()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE billing_ledgerentry ENABLE TRIGGER billing_ledgerentry_immutable")

    assert not ok
    assert "billing_ledgerentry_immutable is missing or disabled" in report
