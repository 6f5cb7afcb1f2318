"""Checks `manage.py ledger_check` runs: each returns a list of problems, empty when all is well."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.db.models import Exists, F, OuterRef, Sum

from billing.invariants import MAX_PROBLEMS
from billing.models import LedgerAccount
from billing.stripe_gateway import StripeGatewayError
from billing.stripe_gateway import connect as gateway
from payouts.models import Clawback, ListenerCredit, ListenerPayout, Payout, StripeCheckCursor

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


# Stripe objects created this long before the last clean check are listed again: a transfer created
# just before a check may be recorded by us just after it.
CURSOR_MARGIN_SECONDS = 600


def check_transfers_match_stripe() -> list[str]:
    """Every paid payout has exactly one transfer on Stripe, of its amount, reversed by as much as we
    recorded, to the listener's account; Stripe holds no payout transfer we have not recorded.

    Incremental: only transfers Stripe created since the last clean check (by `created`, less a
    margin), the older ones a `transfer.reversed` event changed since then, and our payouts paid since
    then are compared. The cursor moves only when everything matched, so a problem is reported until
    it is fixed."""
    cursor, _ = StripeCheckCursor.objects.get_or_create(name="transfers")
    since = max(0, cursor.created - CURSOR_MARGIN_SECONDS)
    started = int(time.time())
    try:
        listed = {t["id"]: t for t in gateway.transfers_list_all(created_gte=since) if _is_payout_transfer(t)}
        reversed_ids = {
            (event.get("data") or {}).get("object", {}).get("id")
            for event in gateway.transfer_reversed_events_since(created_gte=since)
        }
        for transfer_id in sorted(filter(None, reversed_ids - set(listed))):
            transfer = gateway.transfer_retrieve(transfer_id)
            if _is_payout_transfer(transfer):
                listed[transfer_id] = transfer
        sent_since = Payout.objects.filter(status__in=SENT, stripe_transfer_id__isnull=False).filter(
            paid_at__gte=datetime.fromtimestamp(since, tz=UTC)
        )
        for transfer_id in sent_since.exclude(stripe_transfer_id__in=list(listed)).values_list(
            "stripe_transfer_id", flat=True
        ):
            # Paid long after Stripe made it (a crash, then the sweeper): read it by id.
            if transfer_id:
                listed[transfer_id] = gateway.transfer_retrieve(transfer_id)
    except StripeGatewayError as error:
        return [f"could not list transfers on Stripe: {error}"]
    payout_ids = [pk for pk in (_payout_id_of(t) for t in listed.values()) if pk is not None]
    payouts = {
        p.pk: p for p in Payout.objects.filter(pk__in=payout_ids).select_related("listener__stripe_listener_account")
    }
    problems = []
    by_group: dict[str, list[dict]] = {}
    for transfer in listed.values():
        by_group.setdefault(transfer["transfer_group"], []).append(transfer)
    for group, transfers in sorted(by_group.items()):
        if len(transfers) > 1:
            problems.append(f"{group}: {len(transfers)} transfers on Stripe ({', '.join(t['id'] for t in transfers)})")
    for transfer in sorted(listed.values(), key=lambda t: t["id"]):
        group = transfer["transfer_group"]
        payout = payouts.get(_payout_id_of(transfer) or 0)
        if payout is None or payout.status not in SENT:
            if payout is None or payout.status != Payout.Status.PROCESSING:
                problems.append(f"{group}: transfer {transfer['id']} on Stripe is not recorded as paid here")
            continue
        if payout.stripe_transfer_id != transfer["id"]:
            problems.append(f"{group}: our transfer {payout.stripe_transfer_id} is not on Stripe ({transfer['id']} is)")
            continue
        if transfer["amount"] != payout.amount:
            problems.append(f"{group}: {transfer['id']} is {transfer['amount']} on Stripe, {payout.amount} here")
        if int(transfer.get("amount_reversed") or 0) != payout.amount_reversed:
            problems.append(
                f"{group}: {transfer['id']} reversed {transfer.get('amount_reversed') or 0} on Stripe, "
                f"{payout.amount_reversed} here"
            )
        account = getattr(getattr(payout.listener, "stripe_listener_account", None), "stripe_account_id", None)
        if account and transfer.get("destination") != account:
            problems.append(f"{group}: {transfer['id']} went to {transfer.get('destination')}, expected {account}")
    if not problems:
        StripeCheckCursor.objects.filter(pk=cursor.pk).update(created=started)
    return problems[:MAX_PROBLEMS]


def _is_payout_transfer(transfer: dict) -> bool:
    return (transfer.get("transfer_group") or "").startswith("payout-")


def _payout_id_of(transfer: dict) -> int | None:
    suffix = (transfer.get("transfer_group") or "").removeprefix("payout-")
    return int(suffix) if suffix.isdigit() else None


def fees_match_stripe() -> list[str]:
    """Stripe's processing fees are booked as Stripe took them (billing.fees): every balance transaction
    of our charges and refunds carrying a fee is booked once, for that fee, under `stripe-fee-<txn>`,
    and every fee we booked is one Stripe took. Incremental like the transfers (by `created`, with a
    cursor, here because the cursor table is here); a fee not booked yet is reported once it is older
    than the grace its task and sweeper have (billing.fees.GRACE), and holds the cursor until then."""
    from billing import fees, ledger
    from billing.models import LedgerEntry, Payment, Refund
    from billing.stripe_gateway import fees as fee_gateway

    cursor, _ = StripeCheckCursor.objects.get_or_create(name="fees")
    since = max(0, cursor.created - CURSOR_MARGIN_SECONDS)
    started = int(time.time())
    try:
        listed = {t["id"]: t for t in fee_gateway.balance_transactions_since(created_gte=since)}
    except StripeGatewayError as error:
        return [f"could not list balance transactions on Stripe: {error}"]
    booked = dict(
        LedgerEntry.objects.filter(account__code=ledger.PROCESSING_FEES, transaction__key__startswith=fees.KEY_PREFIX)
        .filter(transaction__created_at__gte=datetime.fromtimestamp(since, tz=UTC))
        .values_list("transaction__key", "amount")
    )
    sources = {t.get("source") for t in listed.values()}
    ours: set[str | None] = set(
        Payment.objects.filter(stripe_charge_id__in=sources).values_list("stripe_charge_id", flat=True)
    )
    ours |= set(Refund.objects.filter(stripe_refund_id__in=sources).values_list("stripe_refund_id", flat=True))
    relevant = {tid: t for tid, t in listed.items() if t.get("source") in ours}
    for key in set(booked) - {fees.fee_key(tid) for tid in relevant}:
        try:
            txn = fee_gateway.balance_transaction_retrieve(key.removeprefix(fees.KEY_PREFIX))
        except StripeGatewayError as error:
            return [f"could not read balance transaction of {key} on Stripe: {error}"]
        relevant[txn["id"]] = txn
    keys = [fees.fee_key(tid) for tid in relevant]
    booked.update(
        LedgerEntry.objects.filter(account__code=ledger.PROCESSING_FEES, transaction__key__in=keys).values_list(
            "transaction__key", "amount"
        )
    )
    problems, waiting = [], False
    grace = fees.GRACE.total_seconds()
    for tid, txn in sorted(relevant.items()):
        fee, ours_booked = int(txn.get("fee") or 0), booked.get(fees.fee_key(tid))
        if ours_booked is None and fee:
            if started - int(txn.get("created") or 0) < grace:
                waiting = True
            else:
                problems.append(f"{txn.get('type')} {txn.get('source')}: Stripe took a fee of {fee}, not booked")
        elif ours_booked is not None and ours_booked != fee:
            problems.append(f"{txn.get('type')} {txn.get('source')}: fee {fee} on Stripe, {ours_booked} booked")
    if not problems and not waiting:
        StripeCheckCursor.objects.filter(pk=cursor.pk).update(created=started)
    return problems[:MAX_PROBLEMS]


def earnings_match_bookings() -> list[str]:
    """Every succeeded payment has an earning that is paid, payable (or waiting for its session),
    held for a reason (a dispute open on the payment), or reversed; nothing payable or attached to an
    unpaid payout belongs to a refunded or disputed booking."""
    from billing.models import Dispute, Payment, Refund
    from booking.models import Booking

    E = ListenerPayout.Status
    problems = [
        f"payment {pk}: succeeded, but no earning"
        for pk in Payment.objects.filter(status=Payment.Status.SUCCEEDED, earning__isnull=True).values_list(
            "pk", flat=True
        )[:MAX_PROBLEMS]
    ]
    open_dispute = Dispute.objects.filter(payment_id=OuterRef("payment_id")).exclude(status__in=Dispute.CLOSED)
    # A refund that failed holds the earning for an operator (issue 10 item 11).
    failed_refund = Refund.objects.filter(payment_id=OuterRef("payment_id"), status=Refund.Status.FAILED)
    problems += [
        f"earning {pk}: held, but its payment has no open dispute nor failed refund"
        for pk in ListenerPayout.objects.filter(status=E.HELD)
        .exclude(Exists(open_dispute))
        .exclude(Exists(failed_refund))
        .values_list("pk", flat=True)[:MAX_PROBLEMS]
    ]
    problems += [
        f"earning {pk}: {status} with {net} left, but booking {booking_id} is {booking_status}"
        for pk, status, net, booking_id, booking_status in ListenerPayout.objects.filter(
            status__in=(E.PENDING, E.PAYABLE),
            amount__gt=F("amount_reversed"),
            booking__status__in=(Booking.Status.REFUNDED, Booking.Status.DISPUTED),
        )
        .annotate(net=F("amount") - F("amount_reversed"))
        .values_list("pk", "status", "net", "booking_id", "booking__status")[:MAX_PROBLEMS]
    ]
    problems += [
        f"earning {pk}: cancelled with {net} still owed"
        for pk, net in ListenerPayout.objects.filter(status=E.CANCELLED, amount__gt=F("amount_reversed"))
        .annotate(net=F("amount") - F("amount_reversed"))
        .values_list("pk", "net")[:MAX_PROBLEMS]
    ]
    problems += [
        f"earning {pk}: {status}, attached to pending payout {payout_id}"
        for pk, status, payout_id in ListenerPayout.objects.filter(payout__status=Payout.Status.PENDING)
        .exclude(status=E.PAYABLE)
        .values_list("pk", "status", "payout_id")[:MAX_PROBLEMS]
    ]
    return problems[:MAX_PROBLEMS]


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
    for listener_id, total in (
        ListenerCredit.objects.filter(ListenerCredit.owed_q())
        .values("listener_id")
        .annotate(total=Sum("amount"))
        .values_list("listener_id", "total")
    ):
        # Owed to the listener again after a clawback (payouts.models.ListenerCredit), not paid yet.
        owed[listener_id] = owed.get(listener_id, 0) + (total or 0)
    problems = []
    for listener_id in sorted(set(balances) | set(owed), key=lambda value: value or 0):
        if balances.get(listener_id, 0) != owed.get(listener_id, 0):
            problems.append(
                f"listener {listener_id}: ledger payable {balances.get(listener_id, 0)}, "
                f"unpaid earnings {owed.get(listener_id, 0)}"
            )
    return problems[:MAX_PROBLEMS]


def credits_consistent() -> list[str]:
    """A credit is owed only for an earning that was paid out (or is being paid), is never attached to
    a failed payout (that releases it), and is paid once: the payout that carried it was sent."""
    E = ListenerPayout.Status
    problems = [
        f"credit {key}: owed for earning {earning_id}, which is {status}, not paid out"
        for key, earning_id, status in ListenerCredit.objects.filter(ListenerCredit.owed_q())
        .exclude(earning__status=E.PAID)
        .exclude(earning__payout__status=Payout.Status.PROCESSING)
        .values_list("key", "earning_id", "earning__status")[:MAX_PROBLEMS]
    ]
    problems += [
        f"credit {key}: attached to failed payout {payout_id}"
        for key, payout_id in ListenerCredit.objects.filter(payout__status=Payout.Status.FAILED).values_list(
            "key", "payout_id"
        )[:MAX_PROBLEMS]
    ]
    return problems[:MAX_PROBLEMS]


CHECKS: list[Callable[[], list[str]]] = [
    listener_balances_match_earnings,
    credits_consistent,
    check_transferred_within_earned,
    check_transfers_match_stripe,
    fees_match_stripe,
    earnings_match_bookings,
]
