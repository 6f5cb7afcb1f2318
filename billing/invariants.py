"""Invariants of the books, checked by `manage.py ledger_check` (and by the tests after every scenario).

`CHECKS` is a list of functions taking nothing and returning a list of problems (empty = OK).
`payouts.invariants.CHECKS` holds the checks of earnings, payouts and clawbacks; `ledger_check`
(web's management command, the layer that sees both apps) imports and runs both lists.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.db.models import Count, Q, Sum

from billing import ledger, money
from billing.models import LedgerEntry, LedgerKind, LedgerTransaction, Payment

# Report at most this many problems per check: a broken ledger should not print a million lines.
MAX_PROBLEMS = 50


def transactions_balance() -> list[str]:
    """Every transaction has entries and they sum to zero."""
    rows = (
        LedgerTransaction.objects.annotate(total=Sum("entries__amount"), lines=Count("entries"))
        .filter(Q(lines=0) | ~Q(total=0))
        .values_list("key", "total", "lines")[:MAX_PROBLEMS]
    )
    return [
        f"transaction {key}: no entries" if not lines else f"transaction {key}: entries sum to {total}, not 0"
        for key, total, lines in rows
    ]


def succeeded_payments_booked() -> list[str]:
    """A payment's split is booked exactly when it succeeded, as its booking says: cash = total,
    revenue = app fee, listener payable = listener share, and the shares add up to the total."""
    problems: list[str] = []
    payments = Payment.objects.select_related("booking").filter(
        Q(status=Payment.Status.SUCCEEDED) | Q(ledger_transactions__kind=LedgerKind.PAYMENT_SUCCEEDED)
    )
    booked: dict[int, dict[str, int]] = {}
    for payment_id, code, total in (
        LedgerEntry.objects.filter(transaction__kind=LedgerKind.PAYMENT_SUCCEEDED)
        .values_list("transaction__payment_id", "account__code")
        .annotate(total=Sum("amount"))
    ):
        booked.setdefault(payment_id, {})[code] = total
    for payment in payments.distinct().iterator():
        booking = payment.booking
        if booking.app_fee + booking.listener_amount != booking.total_amount:
            problems.append(f"booking {booking.pk}: shares {booking.app_fee} + {booking.listener_amount} ≠ total")
        if (payment.amount, payment.app_fee, payment.listener_amount) != (
            booking.total_amount,
            booking.app_fee,
            booking.listener_amount,
        ):
            problems.append(f"payment {payment.pk}: amounts differ from booking {booking.pk}")
        lines = booked.get(payment.pk)
        if payment.status != Payment.Status.SUCCEEDED:
            problems.append(f"payment {payment.pk} is {payment.status} but its split is booked")
            continue
        if lines is None:
            problems.append(f"payment {payment.pk} succeeded but its split is not booked")
            continue
        expected = {
            ledger.PLATFORM_CASH: payment.amount,
            ledger.APP_REVENUE: -payment.app_fee,
            ledger.listener_payable(booking.listener_id): -payment.listener_amount,
        }
        expected = {code: amount for code, amount in expected.items() if amount}
        if lines != expected:
            problems.append(f"payment {payment.pk}: split booked as {lines}, expected {expected}")
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def refunds_reversed_in_proportion() -> list[str]:
    """What refund reversals booked for a payment is exactly the proportional reversal of its
    refunded amount, and never more than the original shares."""
    problems: list[str] = []
    reversed_by_payment: dict[int, dict[str, int]] = {}
    for payment_id, code, total in (
        LedgerEntry.objects.filter(transaction__kind__in=LedgerKind.refunds())
        .values_list("transaction__payment_id", "account__code")
        .annotate(total=Sum("amount"))
    ):
        reversed_by_payment.setdefault(payment_id, {})[code] = total
    payments = Payment.objects.select_related("booking").filter(
        Q(amount_refunded__gt=0) | Q(pk__in=list(reversed_by_payment))
    )
    for payment in payments.iterator():
        app = money.proportion(payment.amount_refunded, payment.amount, payment.app_fee)
        expected = {
            ledger.APP_REVENUE: app,
            ledger.listener_payable(payment.booking.listener_id): payment.amount_refunded - app,
            ledger.PLATFORM_CASH: -payment.amount_refunded,
        }
        expected = {code: amount for code, amount in expected.items() if amount}
        got = {code: amount for code, amount in reversed_by_payment.get(payment.pk, {}).items() if amount}
        if got != expected:
            problems.append(
                f"payment {payment.pk}: refunded {payment.amount_refunded}, reversals booked {got}, expected {expected}"
            )
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def ledger_guards_installed() -> list[str]:
    """On PostgreSQL the database must still refuse unbalanced and edited ledger rows."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgname IN "
            "('billing_ledgerentry_balanced', 'billing_ledgerentry_immutable', 'billing_ledgertransaction_immutable')"
            " AND tgenabled <> 'D'"
        )
        present = {row[0] for row in cursor.fetchall()}
    missing = {
        "billing_ledgerentry_balanced",
        "billing_ledgerentry_immutable",
        "billing_ledgertransaction_immutable",
    } - present
    return [f"ledger trigger {name} is missing or disabled" for name in sorted(missing)]


CHECKS: list[Callable[[], list[str]]] = [
    transactions_balance,
    succeeded_payments_booked,
    refunds_reversed_in_proportion,
    ledger_guards_installed,
]
