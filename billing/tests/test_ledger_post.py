"""ledger_post books each fact once, every line on its account, whether the accounts exist yet or not
(on PostgreSQL the transaction and its entries are one statement; these hold on every database)."""

import pytest
from django.db import IntegrityError, transaction

from billing import ledger
from billing.models import LedgerAccount, LedgerEntry, LedgerKind, LedgerTransaction
from web.tests.factories import ListenerFactory

pytestmark = pytest.mark.django_db


def _split(listener_id: int) -> list[ledger.Line]:
    return [
        ledger.debit(ledger.PLATFORM_CASH, 3000),
        ledger.credit(ledger.APP_REVENUE, 300),
        ledger.credit(ledger.listener_payable(listener_id), 2700),
    ]


def _booked(key: str) -> list[tuple[str, int]]:
    rows = LedgerEntry.objects.filter(transaction__key=key).values_list("account__code", "amount")
    return sorted(rows)


def test_a_posting_books_every_line_on_its_account():
    listener = ListenerFactory()
    ledger.ledger_post(key="first", kind=LedgerKind.PAYMENT_SUCCEEDED, lines=_split(listener.pk))

    txn, created = ledger.ledger_post(
        key="second", kind=LedgerKind.PAYMENT_SUCCEEDED, lines=_split(listener.pk), known_new=True
    )

    assert created and txn.pk == LedgerTransaction.objects.get(key="second").pk
    assert _booked("second") == sorted(
        [(ledger.PLATFORM_CASH, 3000), (ledger.APP_REVENUE, -300), (f"listener:{listener.pk}:payable", -2700)]
    )


@pytest.mark.django_db(transaction=True)
def test_a_posting_naming_accounts_that_do_not_exist_yet_creates_them_and_books_their_lines():
    listener = ListenerFactory()
    assert not LedgerAccount.objects.exists()

    # Committed: on PostgreSQL the commit checks that the transaction's entries balance.
    with transaction.atomic():
        ledger.ledger_post(
            key="new-accounts", kind=LedgerKind.PAYMENT_SUCCEEDED, lines=_split(listener.pk), known_new=True
        )

    assert _booked("new-accounts") == sorted(
        [(ledger.PLATFORM_CASH, 3000), (ledger.APP_REVENUE, -300), (f"listener:{listener.pk}:payable", -2700)]
    )
    assert LedgerAccount.objects.get(code=f"listener:{listener.pk}:payable").owner_id == listener.pk


def test_a_fact_booked_again_is_not_booked_twice():
    listener = ListenerFactory()
    first, created = ledger.ledger_post(key="once", kind=LedgerKind.PAYMENT_SUCCEEDED, lines=_split(listener.pk))

    again, created_again = ledger.ledger_post(key="once", kind=LedgerKind.PAYMENT_SUCCEEDED, lines=_split(listener.pk))
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.ledger_post(key="once", kind=LedgerKind.PAYMENT_SUCCEEDED, lines=_split(listener.pk), known_new=True)

    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert LedgerEntry.objects.filter(transaction__key="once").count() == 3
