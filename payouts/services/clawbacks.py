"""Clawback: taking back a listener's share that was already transferred, after a refund or a lost
dispute.

When an earning that was paid out shrinks, the ledger has already moved the listener's share back
out of `listener:<id>:payable` (the reversal of the split), so that account is negative: the listener
owes it. `clawback_request` records that in the same transaction (a `Clawback` row, unique per cause),
and a worker reverses that much of the payout's transfer on Stripe (`reversal-clawback-<id>`):

- the reversal succeeds: the money is back in the platform balance, booked as the `transfer.reversed`
  webhook books it (debit `platform:cash`, credit the listener's payable), and the listener owes nothing;
- Stripe refuses (the connected account has paid the money out to the bank and cannot cover it): the
  clawback becomes a debt. The ledger already carries it, and `debt_net_into_payout` takes it out of
  the listener's next payouts, one `ClawbackRecovery` per payout, never below zero.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from billing import ledger, stripe_gateway
from billing.models import LedgerEntry, LedgerKind
from billing.stripe_gateway import reversals
from common import locks
from payouts import selectors
from payouts.models import Clawback, ClawbackRecovery, ListenerCredit, ListenerPayout, Payout
from payouts.services.reversals import payout_transfer_reversed
from workers.outbox import enqueue_or_leave_to_sweeper, enqueue_stale

logger = logging.getLogger(__name__)


def clawback_request(*, earning: ListenerPayout, amount: int, key: str) -> Clawback | None:
    """Record that `amount` cents of a paid-out earning must come back; a worker reverses the
    transfer once this commits. Call it in the transaction that reverses the split. Once per key."""
    if amount <= 0 or earning.payout_id is None:
        return None
    clawback, created = Clawback.objects.get_or_create(
        key=key,
        defaults={
            "listener_id": earning.listener_id,
            "earning": earning,
            "payout_id": earning.payout_id,
            "amount": amount,
            "currency": earning.currency,
            "enqueued_at": timezone.now(),
        },
    )
    if created:
        transaction.on_commit(lambda: clawback_enqueue(clawback_id=clawback.pk))
    return clawback


def clawback_enqueue(*, clawback_id: int) -> bool:
    return enqueue_or_leave_to_sweeper("billing.clawback_execute", clawback_id, what="clawback")


def clawback_execute(*, clawback_id: int) -> Clawback:
    """Reverse the transfer for a pending clawback, once, or turn it into a debt when Stripe refuses."""
    with transaction.atomic():
        # The payout before the clawback (common.locks), as a failing transfer and debt netting take
        # them: holding the clawback while waiting for its payout deadlocked with those. A clawback's
        # payout never changes, so it is read without a lock first.
        payout_id = Clawback.objects.filter(pk=clawback_id).values_list("payout_id", flat=True).get()
        payout = locks.lock(Payout.objects.filter(pk=payout_id)).get()
        clawback = locks.lock(Clawback.objects.filter(pk=clawback_id)).get()
        if clawback.status != Clawback.Status.PENDING:
            return clawback
        if payout.status == Payout.Status.PROCESSING:
            # The transfer is on its way (a refund landed between claim and record): reversed once it
            # is recorded; the sweeper comes back. A failed transfer cancels the clawback instead.
            return clawback
        clawback.attempts += 1
        if not payout.stripe_transfer_id:
            return _become_debt(clawback, reason="the payout has no transfer to reverse")
        if _take_from_unrequested_reversal(clawback, payout):
            clawback.status = Clawback.Status.REVERSED
            clawback.save()
            return clawback
        try:
            # A reversal made by an earlier attempt whose save was lost is used as it is; by now the
            # `transfer.reversed` webhook may have counted it in the payout's amount_reversed.
            reversal = reversals.transfer_reversal_find(transfer_id=payout.stripe_transfer_id, clawback_id=clawback.pk)
            if reversal is None:
                reversible = min(clawback.amount - clawback.amount_recovered, payout.amount - payout.amount_reversed)
                if reversible <= 0:
                    return _become_debt(clawback, reason="nothing left to reverse on the payout's transfer")
                reversal = reversals.transfer_reversal_create(
                    clawback_id=clawback.pk,
                    transfer_id=payout.stripe_transfer_id,
                    amount=reversible,
                    listener_id=clawback.listener_id,
                )
        except stripe_gateway.PermanentStripeError as error:
            return _become_debt(clawback, reason=f"{error.code or 'stripe_error'}: {error.message}")
        # Booked the way the `transfer.reversed` webhook books it (payouts.services.reversals), from the
        # transfer's reversed total, so whichever of the two comes first books it and the other finds
        # nothing left to book.
        payout_transfer_reversed(transfer=reversals.transfer_retrieve(payout.stripe_transfer_id))
        clawback.stripe_transfer_reversal_id = reversal["id"]
        clawback.amount_recovered = min(clawback.amount, clawback.amount_recovered + reversal["amount"])
        if clawback.amount_recovered < clawback.amount:
            # The transfer could not cover all of it: the rest is owed from the next payouts.
            clawback.status = Clawback.Status.DEBT
            clawback.failure_reason = "the transfer covered only part of it"
        else:
            clawback.status = Clawback.Status.REVERSED
        clawback.save()
        return clawback


def _take_from_unrequested_reversal(clawback: Clawback, payout: Payout) -> bool:
    """An operator already reversed (part of) this payout's transfer without a clawback: that money is
    back with us, so a refund of the same payout is settled from it first instead of becoming a debt
    for money already taken back. Booked from `platform:unrequested_reversals` to the listener's
    payable, once per clawback. Returns whether it covered the whole clawback."""
    available = payout.amount_reversed_unrequested - payout.unrequested_applied
    take = min(available, clawback.amount - clawback.amount_recovered)
    if take <= 0:
        return False
    _, created = ledger.ledger_post(
        key=f"clawback-{clawback.pk}-from-unrequested-reversal",
        kind=LedgerKind.PAYOUT_TRANSFER_REVERSAL,
        currency=payout.currency,
        description=f"Clawback {clawback.key} settled from payout #{payout.pk}'s unrequested reversal",
        lines=[
            ledger.debit(ledger.UNREQUESTED_REVERSALS, take),
            ledger.credit(ledger.listener_payable(clawback.listener_id), take),
        ],
        metadata={"payout_id": payout.pk, "clawback_id": clawback.pk},
    )
    if created:
        payout.unrequested_applied += take
        payout.save(update_fields=["unrequested_applied", "updated_at"])
        clawback.amount_recovered += take
    return clawback.amount_recovered >= clawback.amount


def _become_debt(clawback: Clawback, *, reason: str) -> Clawback:
    clawback.status = Clawback.Status.DEBT
    clawback.failure_reason = reason[:255]
    clawback.save()
    logger.warning("clawback %s could not be reversed (%s); netted in the next payout", clawback.key, reason)
    return clawback


def debt_outstanding(*, listener_id: int) -> int:
    """What the listener still owes from clawbacks that could not be reversed."""
    totals = Clawback.objects.filter(listener_id=listener_id, status=Clawback.Status.DEBT).aggregate(
        amount=Sum("amount"), recovered=Sum("amount_recovered")
    )
    return (totals["amount"] or 0) - (totals["recovered"] or 0)


def debt_net_into_payout(*, payout_id: int, listener_id: int, gross: int) -> int:
    """Take the listener's debts out of a payout of `gross` cents and return what is left to
    transfer (never negative). Call it in the transaction that fixes the payout's amount, before the
    transfer. Netting the same payout again returns the same amount and recovers nothing more.

    Oldest debts are recovered first; a debt larger than the payout is recovered in part and the rest
    carried to the next one. The ledger needs no entry: the listener's payable already holds
    earnings minus debts, which is exactly what is transferred.
    """
    already = ClawbackRecovery.objects.filter(payout_id=payout_id).aggregate(total=Sum("amount"))["total"]
    if already is not None:
        return max(0, gross - already)
    left = gross
    debts = Clawback.objects.select_for_update().filter(listener_id=listener_id, status=Clawback.Status.DEBT)
    for clawback in debts.order_by("id"):
        if left <= 0:
            break
        take = min(left, clawback.amount - clawback.amount_recovered)
        if take <= 0:
            continue
        ClawbackRecovery.objects.create(clawback=clawback, payout_id=payout_id, amount=take)
        clawback.amount_recovered += take
        if clawback.amount_recovered >= clawback.amount:
            clawback.status = Clawback.Status.RECOVERED
        clawback.save(update_fields=["amount_recovered", "status", "updated_at"])
        left -= take
    return left


def clawbacks_sweep_pending() -> int:
    """Enqueue again clawbacks still pending after a while (a lost task, a broker outage)."""
    return enqueue_stale(
        Clawback.objects.filter(status=Clawback.Status.PENDING),
        stamp_field="enqueued_at",
        enqueue=lambda pk: clawback_enqueue(clawback_id=pk),
    )


def debt_recoveries_undo(*, payout: Payout) -> None:
    """A payout that sent nothing recovered no debt: the debts are owed again by the next payout."""
    for recovery in ClawbackRecovery.objects.filter(payout=payout):
        clawback = Clawback.objects.select_for_update().get(pk=recovery.clawback_id)
        clawback.amount_recovered -= recovery.amount
        clawback.status = Clawback.Status.DEBT
        clawback.save(update_fields=["amount_recovered", "status", "updated_at"])
        recovery.delete()


def clawbacks_cancel_for_failed_payout(*, payout: Payout) -> int:
    """The payout's transfer failed: nothing went out, so nothing is to be taken back from it. Called
    under the payout's lock, before its earnings go back to the pool (their net already excludes what
    the refund took)."""
    return Clawback.objects.filter(payout=payout, status=Clawback.Status.PENDING).update(
        status=Clawback.Status.CANCELLED,
        failure_reason="the payout's transfer failed: nothing was sent",
        updated_at=timezone.now(),
    )


def clawbacks_shrink(*, earning: ListenerPayout, amount: int, cause: str) -> int:
    """A paid-out earning was given back `amount` (the refund that shrank it failed): what its
    clawbacks have not taken yet is no longer owed, newest first (pending ones are cancelled in part
    or whole, debts reduced); what they did take back is owed to the listener again: a
    `ListenerCredit` (key `credit-<cause>`) paid with their next payout. Called under the earning's
    lock (earning → payout → clawback). Returns the credit's amount."""
    left = amount
    if earning.payout_id is not None:
        # The clawbacks' payout before the clawbacks (common.locks): giving back may touch its
        # unrequested reversal.
        locks.lock(Payout.objects.filter(pk=earning.payout_id)).get()
    open_ones = locks.lock(
        Clawback.objects.filter(earning=earning, status__in=(Clawback.Status.PENDING, Clawback.Status.DEBT))
    )
    for clawback in open_ones.order_by("-id"):
        if left <= 0:
            break
        cut = min(left, clawback.amount - clawback.amount_recovered)
        if cut <= 0:
            continue
        clawback.amount -= cut
        left -= cut
        if clawback.amount == 0 or clawback.amount == clawback.amount_recovered:
            if clawback.amount_recovered == 0:
                # Nothing left to claw back and nothing taken: the row is kept (its key stays used), cancelled.
                clawback.amount = cut
                clawback.status = Clawback.Status.CANCELLED
            else:
                clawback.status = Clawback.Status.RECOVERED
            clawback.failure_reason = "the refund behind it failed"
        clawback.save(update_fields=["amount", "status", "failure_reason", "updated_at"])
    if left <= 0:
        return 0
    # What a clawback took back is owed again; the rest no clawback took (the earning had shrunk
    # before it was paid out, so its transfer was smaller) is owed just the same.
    to_credit = _clawbacks_give_back(earning=earning, amount=left)
    return _credit_record(earning=earning, amount=to_credit, cause=cause)


def _clawbacks_give_back(*, earning: ListenerPayout, amount: int) -> int:
    """Undo what the earning's clawbacks recovered, up to `amount`, newest first, and return what is
    owed to the listener. What a clawback took from an operator's unrequested reversal (it takes that
    first) goes back there instead: by that rule it is not the listener's until an operator decides
    (payouts.services.reversals)."""
    left, to_listener = amount, 0
    recovered = locks.lock(Clawback.objects.filter(earning=earning, amount_recovered__gt=F("amount_given_back")))
    for clawback in recovered.order_by("-id"):
        if left <= 0:
            break
        give = min(left, clawback.amount_recovered - clawback.amount_given_back)
        to_unrequested = max(0, min(give, _taken_from_unrequested(clawback) - clawback.amount_given_back))
        if to_unrequested:
            ledger.ledger_post(
                key=f"clawback-{clawback.pk}-given-back-{clawback.amount_given_back + to_unrequested}",
                kind=LedgerKind.PAYOUT_TRANSFER_REVERSAL,
                currency=clawback.currency,
                description=f"Clawback {clawback.key}: its cause failed, back to the unrequested reversal",
                lines=[
                    ledger.debit(ledger.listener_payable(clawback.listener_id), to_unrequested),
                    ledger.credit(ledger.UNREQUESTED_REVERSALS, to_unrequested),
                ],
                metadata={"payout_id": clawback.payout_id, "clawback_id": clawback.pk},
            )
            Payout.objects.filter(pk=clawback.payout_id).update(
                unrequested_applied=F("unrequested_applied") - to_unrequested, updated_at=timezone.now()
            )
        clawback.amount_given_back += give
        clawback.save(update_fields=["amount_given_back", "updated_at"])
        to_listener += give - to_unrequested
        left -= give
    return to_listener + left


def _taken_from_unrequested(clawback: Clawback) -> int:
    entry = (
        LedgerEntry.objects.filter(
            transaction__key=f"clawback-{clawback.pk}-from-unrequested-reversal",
            account__code=ledger.listener_payable(clawback.listener_id),
        )
        .values_list("amount", flat=True)
        .first()
    )
    return -(entry or 0)


def _credit_record(*, earning: ListenerPayout, amount: int, cause: str) -> int:
    if amount <= 0:
        return 0
    credit, created = ListenerCredit.objects.get_or_create(
        key=f"credit-{cause}"[:100],
        defaults={
            "listener_id": earning.listener_id,
            "earning": earning,
            "amount": amount,
            "currency": earning.currency,
            "reason": f"{cause}: taken back from the listener, then the money stayed with us"[:255],
        },
    )
    if created:
        logger.info("earning %s: %s cents owed to the listener again (%s)", earning.pk, amount, cause)
    return credit.amount


def credits_for_failed_payout(*, payout: Payout) -> None:
    """A payout that sent nothing paid no credit: those it carried are owed by the next one. Credits
    for its own earnings (a refund failed while the transfer was in flight) are cancelled: the
    earnings go back to the pool whole. Called under the payout's lock."""
    now = timezone.now()
    ListenerCredit.objects.filter(earning__payout=payout, cancelled_at__isnull=True).filter(
        ListenerCredit.owed_q()
    ).update(cancelled_at=now, payout=None, updated_at=now)
    ListenerCredit.objects.filter(payout=payout).update(payout=None, updated_at=now)


def credits_recheck(*, pending_payout_ids: list[int]) -> int:
    """At the transfer, under the locks: credits of these pending payouts (read PENDING by the caller
    under their earnings' locks) no longer payable (a refund in flight or a dispute on their payment, an
    operator hold) go back to the pool. Returns how many."""
    attached = locks.lock(ListenerCredit.objects.filter(payout_id__in=pending_payout_ids).order_by("pk"))
    if not list(attached.values_list("pk", flat=True)):
        return 0
    return (
        ListenerCredit.objects.filter(payout_id__in=pending_payout_ids)
        .exclude(selectors.credit_payable_now_q() & Q(cancelled_at__isnull=True))
        .update(payout=None, updated_at=timezone.now())
    )
