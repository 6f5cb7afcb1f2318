"""Checks `manage.py ledger_check` runs: each returns a list of problems, empty when all is well."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import F, Sum

from billing.invariants import MAX_PROBLEMS
from billing.models import LedgerAccount
from billing.stripe_gateway import StripeGatewayError
from billing.stripe_gateway import connect as gateway
from payouts.models import Clawback, ListenerPayout, Payout

SENT = (Payout.Status.PAID, Payout.Status.REVERSED)


def check_transferred_within_earned() -> list[str]:
    """For every listener: transferred − reversed ≤ earned − reversed."""
    earned = dict(
        ListenerPayout.objects.values("listener_id")
        .annotate(net=Sum(F("amount") - F("amount_reversed")))
        .values_list("listener_id", "net")
    )
    transferred = (
        Payout.objects.filter(status__in=SENT)
        .values("listener_id")
        .annotate(net=Sum(F("amount") - F("amount_reversed")))
        .values_list("listener_id", "net")
    )
    # Clawbacks not reversed or recovered yet: money transferred that the listener owes back (billing.clawback).
    owed_back = dict(
        Clawback.objects.filter(status__in=(Clawback.Status.PENDING, Clawback.Status.DEBT))
        .values("listener_id")
        .annotate(total=Sum(F("amount") - F("amount_recovered")))
        .values_list("listener_id", "total")
    )
    return [
        f"listener {listener_id}: transferred {net} > earned {earned.get(listener_id, 0)}"
        for listener_id, net in transferred
        if net > earned.get(listener_id, 0) + owed_back.get(listener_id, 0)
    ]


def check_transfers_match_stripe() -> list[str]:
    """Every paid payout has exactly one transfer on Stripe, of its amount, to the listener's account;
    Stripe holds no payout transfer we have not recorded."""
    try:
        stripe_transfers = [
            t for t in gateway.transfers_list_all() if (t.get("transfer_group") or "").startswith("payout-")
        ]
    except StripeGatewayError as error:
        return [f"could not list transfers on Stripe: {error}"]
    by_group: dict[str, list[dict]] = {}
    for transfer in stripe_transfers:
        by_group.setdefault(transfer["transfer_group"], []).append(transfer)
    problems = []
    for group, transfers in by_group.items():
        if len(transfers) > 1:
            problems.append(f"{group}: {len(transfers)} transfers on Stripe ({', '.join(t['id'] for t in transfers)})")
    # A payout that a clawback debt took whole was settled without a transfer.
    transferred = Payout.objects.filter(status__in=SENT).exclude(amount=0, stripe_transfer_id__isnull=True)
    ours = {
        f"payout-{pk}": (transfer_id, amount, account)
        for pk, transfer_id, amount, account in transferred.values_list(
            "pk", "stripe_transfer_id", "amount", "listener__stripe_listener_account__stripe_account_id"
        )
    }
    for group, (transfer_id, amount, account) in ours.items():
        found = {t["id"]: t for t in by_group.get(group, [])}
        if transfer_id not in found:
            problems.append(f"{group}: our transfer {transfer_id} is not on Stripe")
            continue
        theirs = found[transfer_id]
        if theirs["amount"] != amount:
            problems.append(f"{group}: {transfer_id} is {theirs['amount']} on Stripe, {amount} here")
        if account and theirs.get("destination") != account:
            problems.append(f"{group}: {transfer_id} went to {theirs.get('destination')}, expected {account}")
    unrecorded = set(by_group) - set(ours)
    if unrecorded:
        in_flight = {
            f"payout-{pk}" for pk in Payout.objects.filter(status=Payout.Status.PROCESSING).values_list("pk", flat=True)
        }
        for group in sorted(unrecorded - in_flight):
            problems.append(f"{group}: transfer {by_group[group][0]['id']} on Stripe is not recorded as paid here")
    return problems


# Earnings the platform still owes (or owed and took back): their net amount is the listener's balance.
UNPAID_STATUSES = (
    ListenerPayout.Status.PENDING,
    ListenerPayout.Status.PAYABLE,
    ListenerPayout.Status.HELD,
    ListenerPayout.Status.CANCELLED,
)


def listener_balances_match_earnings() -> list[str]:
    """Each listener's payable balance in the ledger equals the net amount of their unpaid earnings,
    less what paid-out earnings lost to refunds or disputes and the listener still owes (clawbacks
    not yet reversed on Stripe, debts not yet netted out of a payout)."""
    balances = {
        owner_id: -(total or 0)
        for owner_id, total in LedgerAccount.objects.filter(code__startswith="listener:", code__endswith=":payable")
        .annotate(total=Sum("entries__amount"))
        .values_list("owner_id", "total")
    }
    owed = {
        listener_id: total or 0
        for listener_id, total in ListenerPayout.objects.filter(status__in=UNPAID_STATUSES)
        .values("listener_id")
        .annotate(total=Sum("amount") - Sum("amount_reversed"))
        .values_list("listener_id", "total")
    }
    for listener_id, total in (
        Clawback.objects.filter(status__in=(Clawback.Status.PENDING, Clawback.Status.DEBT))
        .values("listener_id")
        .annotate(total=Sum("amount") - Sum("amount_recovered"))
        .values_list("listener_id", "total")
    ):
        owed[listener_id] = owed.get(listener_id, 0) - (total or 0)
    problems = []
    for listener_id in sorted(set(balances) | set(owed), key=lambda value: value or 0):
        if balances.get(listener_id, 0) != owed.get(listener_id, 0):
            problems.append(
                f"listener {listener_id}: ledger payable {balances.get(listener_id, 0)}, "
                f"unpaid earnings {owed.get(listener_id, 0)}"
            )
    return problems[:MAX_PROBLEMS]


CHECKS: list[Callable[[], list[str]]] = [
    listener_balances_match_earnings,
    check_transferred_within_earned,
    check_transfers_match_stripe,
]
