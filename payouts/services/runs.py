"""Payout runs: collect the payable earnings of a period into payouts, then execute them (see the package docstring)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.stripe_gateway import StripeGatewayError
from payouts import selectors
from payouts.models import ListenerCredit, ListenerPayoutSettings, Payout
from payouts.periods import Period
from payouts.services.connect import connect_account_refresh
from payouts.services.sql import earnings_attach, payout_amounts_refresh
from payouts.services.transfers import (
    DEFERRED,
    EXECUTE_BATCH,
    TransferPipeline,
    chunks,
    payout_execute,
    payouts_execute,
    resend_after,
)
from web.models import User

logger = logging.getLogger(__name__)


BATCH_SIZE = 500


@dataclass
class RunSummary:
    period: Period
    dry_run: bool = False
    listeners: int = 0
    payouts_created: int = 0
    rolled_over: int = 0
    paid: int = 0
    failed: int = 0
    in_flight: int = 0
    errors: int = 0
    amount_paid: int = 0
    amount_planned: int = 0
    failures: dict[int, str] = field(default_factory=dict)
    # Kept PENDING because Stripe's available balance could not cover them yet (transfers.DEFERRED).
    deferred: int = 0
    amount_deferred: int = 0
    deferrals: dict[int, str] = field(default_factory=dict)
    # Listeners with earnings due that were not collected because of their Connect account, by reason
    # (selectors.listeners_held_by_account): kept unpaid for a run after Stripe makes the account ready.
    held: dict[str, int] = field(default_factory=dict)


def _minimum_for(payout_settings: ListenerPayoutSettings | None) -> int:
    if payout_settings is not None and payout_settings.minimum_amount is not None:
        return max(payout_settings.minimum_amount, 1)
    # Never a zero transfer, whatever the configuration says.
    return max(settings.PAYOUT_MINIMUM_CENTS, 1)


def payouts_collect(*, period: Period, listener_ids: Iterable[int], dry_run: bool = False) -> dict[str, int]:
    """Attach the payable earnings of these listeners to their payout of `period` (one transaction).

    Listeners another run is collecting right now are skipped: that run pays them. Returns counts.
    """
    counts = {"listeners": 0, "created": 0, "rolled_over": 0, "amount": 0}
    with transaction.atomic():
        locked = list(
            User.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(pk__in=list(listener_ids))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not locked:
            return counts
        earnings = list(
            selectors.earnings_payable(schedule=period.schedule, cutoff=period.cutoff)
            .filter(listener_id__in=locked)
            .select_for_update(of=("self",))
            .values_list("pk", "listener_id", "amount", "amount_reversed")
        )
        owed: dict[int, int] = defaultdict(int)
        earning_ids: dict[int, list[int]] = defaultdict(list)
        for pk, listener_id, amount, reversed_amount in earnings:
            owed[listener_id] += amount - reversed_amount
            earning_ids[listener_id].append(pk)
        # Money owed again after a clawback (payouts.models.ListenerCredit) rides with the payout.
        credit_ids: dict[int, list[int]] = defaultdict(list)
        for pk, listener_id, amount in (
            selectors.credits_payable(schedule=period.schedule)
            .filter(listener_id__in=locked)
            .select_for_update(of=("self",))
            .values_list("pk", "listener_id", "amount")
        ):
            owed[listener_id] += amount
            credit_ids[listener_id].append(pk)
        counts["listeners"] = len(owed)
        payout_settings = {s.listener_id: s for s in ListenerPayoutSettings.objects.filter(listener_id__in=list(owed))}
        existing = {
            p.listener_id: p
            for p in Payout.objects.select_for_update().filter(
                listener_id__in=list(owed), schedule=period.schedule, period_start=period.start
            )
        }
        to_create: list[Payout] = []
        reused: list[int] = []
        attach: list[int] = []
        credited: dict[int, list[int]] = {}
        for listener_id, amount in owed.items():
            if amount < _minimum_for(payout_settings.get(listener_id)):
                counts["rolled_over"] += 1
                continue
            payout = existing.get(listener_id)
            if payout is None:
                to_create.append(
                    Payout(
                        listener_id=listener_id,
                        schedule=period.schedule,
                        period_start=period.start,
                        period_end=period.end,
                        currency=settings.STRIPE_CURRENCY,
                    )
                )
            elif payout.status in (Payout.Status.PENDING, Payout.Status.FAILED):
                reused.append(payout.pk)
            else:
                # This period was already paid: later earnings go to the next one.
                continue
            attach.extend(earning_ids[listener_id])
            if credit_ids[listener_id]:
                credited[listener_id] = credit_ids[listener_id]
            counts["amount"] += amount
        counts["created"] = len(to_create)
        if dry_run:
            transaction.set_rollback(True)
            return counts
        created = Payout.objects.bulk_create(to_create)
        payout_ids = [p.pk for p in created] + reused
        if reused:
            Payout.objects.filter(pk__in=reused).update(status=Payout.Status.PENDING, updated_at=timezone.now())
        if attach:
            earnings_attach(earning_ids=attach, period=period)
        if credited:
            payout_of = {p.listener_id: p.pk for p in created} | {
                p.listener_id: p.pk for p in existing.values() if p.pk in reused
            }
            for listener_id, ids in credited.items():
                ListenerCredit.objects.filter(pk__in=ids).update(payout_id=payout_of[listener_id])
        if payout_ids:
            payout_amounts_refresh(payout_ids)
    return counts


def payout_run(
    *,
    period: Period,
    dry_run: bool = False,
    execute: bool = True,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> RunSummary:
    """Pay one period of one schedule. Safe to repeat, to run concurrently and to run late."""
    summary = RunSummary(period=period, dry_run=dry_run)
    after = 0
    while True:
        listener_ids = selectors.listener_ids_due(
            schedule=period.schedule, cutoff=period.cutoff, after=after, limit=batch_size
        )
        if not listener_ids:
            break
        counts = payouts_collect(period=period, listener_ids=listener_ids, dry_run=dry_run)
        summary.listeners += counts["listeners"]
        summary.payouts_created += counts["created"]
        summary.rolled_over += counts["rolled_over"]
        summary.amount_planned += counts["amount"]
        after = listener_ids[-1]
        if progress and (dry_run or not execute):
            progress(len(listener_ids))
    summary.held = selectors.listeners_held_by_account(schedule=period.schedule, cutoff=period.cutoff)
    if summary.held:
        logger.info("%s: listeners held for their Connect account: %s", period.label, summary.held)
    if dry_run or not execute:
        return summary

    resend_before = timezone.now() - resend_after()
    with TransferPipeline(resend_before=resend_before) as pipeline:
        # Payouts of earlier periods still pending (deferred for want of available funds, or left by a
        # crash) go first: they are the oldest debts to the listeners.
        _payouts_execute_pages(
            summary,
            pipeline,
            lambda after: selectors.payout_ids_pending_before(
                schedule=period.schedule, period_start=period.start, after=after, limit=batch_size
            ),
            None,
        )
        _payouts_execute_pages(
            summary,
            pipeline,
            lambda after: selectors.payout_ids_to_execute(
                schedule=period.schedule,
                period_start=period.start,
                resend_before=resend_before,
                after=after,
                limit=batch_size,
            ),
            progress,
        )
        for payout in pipeline.close():
            _count_outcome(summary, payout)
    summary.errors += pipeline.errors
    return summary


def _payouts_execute_pages(
    summary: RunSummary,
    pipeline: TransferPipeline,
    next_page: Callable[[int], list[int]],
    progress: Callable[[int], None] | None,
) -> None:
    after = 0
    while True:
        payout_ids = next_page(after)
        if not payout_ids:
            break
        for chunk in chunks(payout_ids, EXECUTE_BATCH):
            try:
                for payout in pipeline.submit(chunk):
                    _count_outcome(summary, payout)
            except Exception:
                # One batch's bug must not stop the others; it stays PENDING/PROCESSING for the sweeper.
                logger.exception("payouts %s..%s could not be executed", chunk[0], chunk[-1])
                summary.errors += len(chunk)
        if progress:
            progress(len(payout_ids))
        after = payout_ids[-1]


def _count_outcome(summary: RunSummary, payout: Payout | None) -> None:
    if payout is None:
        return  # another worker has it
    if payout.status == Payout.Status.PAID:
        summary.paid += 1
        summary.amount_paid += payout.amount
    elif payout.status == Payout.Status.FAILED:
        summary.failed += 1
        summary.failures[payout.pk] = payout.failure_reason
    elif payout.status == Payout.Status.PENDING and payout.failure_reason.startswith(DEFERRED):
        summary.deferred += 1
        summary.amount_deferred += payout.amount
        summary.deferrals[payout.pk] = payout.failure_reason
    else:
        summary.in_flight += 1


def payouts_sweep_stuck(*, older_than: timedelta | None = None) -> int:
    """Finish payouts a crash or a timeout left PENDING or PROCESSING (any period)."""
    cutoff = timezone.now() - (older_than if older_than is not None else resend_after())
    stuck = list(selectors.payouts_stuck(older_than=cutoff).values_list("pk", flat=True)[:1000])
    done = 0
    for chunk in chunks(stuck, EXECUTE_BATCH):
        payouts = payouts_execute(payout_ids=chunk, resend_before=cutoff)
        done += sum(payout.status == Payout.Status.PAID for payout in payouts)
    return done


def payout_retry(*, payout_id: int) -> Payout:
    """An operator retries a failed payout: it collects the listener's payable earnings again (its
    own released ones and anything newer up to its period's cutoff) and is sent with a new attempt.
    The listener's Connect account is read from Stripe first: a payout usually fails because of it, and
    the operator retries because it was fixed (an event telling us may still be on its way)."""
    payout = Payout.objects.select_related("listener__stripe_listener_account").get(pk=payout_id)
    if payout.status != Payout.Status.FAILED:
        raise ValueError(f"Payout #{payout.pk} is {payout.status}, only failed payouts are retried.")
    account = getattr(payout.listener, "stripe_listener_account", None)
    if account is not None:
        try:
            connect_account_refresh(account_id=account.stripe_account_id)
        except StripeGatewayError as error:
            logger.warning("payout %s retry: account %s not read from Stripe (%s)", payout.pk, account, error)
    period = Period(payout.schedule, payout.period_start, payout.period_end)
    payouts_collect(period=period, listener_ids=[payout.listener_id])
    payout.refresh_from_db()
    if payout.status == Payout.Status.PENDING:
        payout_execute(payout_id=payout.pk)
        payout.refresh_from_db()
    return payout
