"""Writes of the payouts app: listener earnings, Connect accounts, payout runs and transfers.

How a payout is paid exactly once
---------------------------------
1. **Collect** (`payouts_collect`, in batches of listeners, one transaction per batch). The batch's
   listener rows are locked `FOR NO KEY UPDATE SKIP LOCKED`, so two runs never collect the same
   listener at once (the other run skips it and finds nothing left afterwards). The listener's payable
   earnings are attached to the payout of (listener, schedule, period) — unique in the database — and
   the payout's amount is the sum of what is attached. Below the minimum nothing is attached: the
   earnings roll over to the next period.
2. **Execute** (`payouts_execute`, 100 payouts at a time). A short transaction locks the batch
   (`SKIP LOCKED`: concurrent runs split the work) and moves its payouts PENDING → PROCESSING,
   counting the attempt; only then is Stripe called, outside any transaction, a few transfers at a
   time, each with the idempotency key of its attempt; a second short transaction records the
   transfers, marks the earnings paid and books the ledger. A payout still PENDING has therefore
   never reached Stripe. A PROCESSING payout may have: before sending it again we look its transfer
   up by `transfer_group`, which works after Stripe's 24-hour idempotency window, and within the
   window the same key would return the same transfer anyway.

   Why batches inside the run rather than one Celery task per payout: each payout then costs one
   Stripe call and a tenth of a query instead of two commits and ~14 queries (measured with
   bench/payout_bench.py: 44 payouts/s one by one, 300+ payouts/s batched on a 2-core machine).
   `payout_execute` (one payout) remains for the admin, the tasks and the sweeper.
3. A refused transfer (insufficient platform balance, restricted account) marks the payout FAILED
   with Stripe's reason and releases its earnings: the next run (or a re-run of the period, which
   reuses the failed row) collects them again. A timeout leaves the payout PROCESSING for the
   sweeper, which resends only after the lookup.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing import ledger
from billing.stripe_gateway import PermanentStripeError, StripeGatewayError, TransientStripeError
from billing.stripe_gateway import connect as gateway
from payouts import selectors
from payouts.models import ListenerPayout, ListenerPayoutSettings, Payout, StripeListenerAccount
from payouts.periods import Period
from web.models import User

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# Payouts claimed, sent and recorded together; each batch holds its row locks only for its two short
# transactions, never while Stripe is called.
EXECUTE_BATCH = 100


def earning_session_completed(*, booking_id: int, completed_at: datetime) -> int:
    """The session happened: the earning becomes payable once the configured hold has passed."""
    return ListenerPayout.objects.filter(booking_id=booking_id, status=ListenerPayout.Status.PENDING).update(
        payable_at=completed_at + timedelta(hours=settings.PAYOUT_HOLD_HOURS)
    )


def _resend_after() -> timedelta:
    # How long a PROCESSING payout is left to the worker that sent it before another one looks it up.
    return timedelta(seconds=settings.PAYOUT_RESEND_AFTER_SECONDS)


# --- Connect accounts -------------------------------------------------------------------------------


def connect_account_get_or_create(*, listener: User) -> StripeListenerAccount:
    """The listener's Express account, created on Stripe once. The idempotency key is the listener's,
    so racing requests get the same account; a crash before our save is repaired by `account.updated`,
    which carries the listener id in the account's metadata."""
    existing = StripeListenerAccount.objects.filter(listener=listener).first()
    if existing is not None:
        return existing
    account = gateway.account_create(listener_id=listener.pk, email=listener.email)
    try:
        with transaction.atomic():
            return StripeListenerAccount.objects.create(
                listener=listener, stripe_account_id=account["id"], **_account_fields(account)
            )
    except IntegrityError:
        return StripeListenerAccount.objects.get(listener=listener)


def connect_onboarding_link_create(*, listener: User) -> dict:
    """A fresh, single-use Account Link for the listener's onboarding (creating the account first)."""
    account = connect_account_get_or_create(listener=listener)
    link = gateway.account_link_create(
        account_id=account.stripe_account_id,
        refresh_url=settings.CONNECT_REFRESH_URL,
        return_url=settings.CONNECT_RETURN_URL,
    )
    return {"account": account, "url": link["url"], "expires_at": link.get("expires_at")}


def _account_fields(account: dict) -> dict:
    requirements = account.get("requirements") or {}
    return {
        "charges_enabled": bool(account.get("charges_enabled")),
        "payouts_enabled": bool(account.get("payouts_enabled")),
        "details_submitted": bool(account.get("details_submitted")),
        "requirements": {
            key: requirements.get(key) or []
            for key in ("currently_due", "eventually_due", "past_due", "pending_verification", "errors")
        },
        "disabled_reason": requirements.get("disabled_reason") or "",
    }


@transaction.atomic
def connect_account_sync(*, account: dict, event_created: int) -> bool:
    """Apply Stripe's view of a connected account. Events older than the last one applied change
    nothing (Stripe does not keep order). Returns whether anything was applied."""
    row = StripeListenerAccount.objects.select_for_update().filter(stripe_account_id=account["id"]).first()
    if row is None:
        listener_id = (account.get("metadata") or {}).get("listener_id")
        listener = User.objects.filter(pk=listener_id, role=User.Role.LISTENER).first() if listener_id else None
        if listener is None:
            return False
        row, _ = StripeListenerAccount.objects.get_or_create(
            listener=listener, defaults={"stripe_account_id": account["id"]}
        )
        if row.stripe_account_id != account["id"]:
            logger.warning("listener %s has account %s; ignoring %s", listener.pk, row.stripe_account_id, account["id"])
            return False
    if event_created < row.last_event_created:
        return False
    for name, value in _account_fields(account).items():
        setattr(row, name, value)
    row.last_event_created = event_created
    row.save()
    return True


def connect_account_payout_failed(*, account_id: str, payout: dict) -> bool:
    """The connected account's bank payout failed: the money is back on the listener's Stripe balance,
    our transfer stands. Recorded so the listener and ops see it."""
    updated = StripeListenerAccount.objects.filter(stripe_account_id=account_id).update(
        payout_failure_code=payout.get("failure_code") or "",
        payout_failure_message=payout.get("failure_message") or "",
        payout_failed_at=timezone.now(),
    )
    return bool(updated)


# --- Listener settings ------------------------------------------------------------------------------


def listener_payouts_hold(*, listener_id: int, reason: str) -> ListenerPayoutSettings:
    payout_settings, _ = ListenerPayoutSettings.objects.get_or_create(listener_id=listener_id)
    payout_settings.payouts_held = True
    payout_settings.hold_reason = reason[:255]
    payout_settings.save(update_fields=["payouts_held", "hold_reason"])
    return payout_settings


def listener_payouts_release(*, listener_id: int) -> ListenerPayoutSettings:
    payout_settings, _ = ListenerPayoutSettings.objects.get_or_create(listener_id=listener_id)
    payout_settings.payouts_held = False
    payout_settings.hold_reason = ""
    payout_settings.save(update_fields=["payouts_held", "hold_reason"])
    return payout_settings


# --- Runs -------------------------------------------------------------------------------------------


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
            _earnings_attach(earning_ids=attach, period=period)
        if payout_ids:
            _payout_amounts_refresh(payout_ids)
    return counts


def _earnings_attach(*, earning_ids: list[int], period: Period) -> None:
    """Point each earning at its listener's payout of the period, in one `UPDATE ... FROM` join
    (a correlated subquery, or `= ANY(array)`, was planned as a scan and took a second per batch;
    joining `unnest()` makes it index lookups)."""
    if connection.vendor != "postgresql":
        _earnings_attach_portable(earning_ids=earning_ids, period=period)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ListenerPayout._meta.db_table} AS e SET payout_id = p.id, status = %s, updated_at = %s "
            f"FROM unnest(%s::bigint[]) AS chosen(id), {Payout._meta.db_table} AS p "
            "WHERE e.id = chosen.id AND p.listener_id = e.listener_id AND p.schedule = %s AND p.period_start = %s",
            [ListenerPayout.Status.PAYABLE, timezone.now(), earning_ids, period.schedule, period.start],
        )


def _payout_amounts_refresh(payout_ids: list[int]) -> None:
    """A pending payout's amount is, by definition, the net of what is attached to it."""
    if connection.vendor != "postgresql":
        _payout_amounts_refresh_portable(payout_ids)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Payout._meta.db_table} AS p SET amount = t.total, updated_at = %s "
            f"FROM (SELECT e.payout_id, SUM(e.amount - e.amount_reversed) AS total "
            f"FROM unnest(%s::bigint[]) AS chosen(id) "
            f"JOIN {ListenerPayout._meta.db_table} AS e ON e.payout_id = chosen.id "
            "GROUP BY e.payout_id) AS t WHERE p.id = t.payout_id",
            [timezone.now(), payout_ids],
        )


def _earnings_attach_portable(*, earning_ids: list[int], period: Period) -> None:
    """The same as the PostgreSQL join, in ORM queries, for the SQLite development database."""
    listener_of = dict(ListenerPayout.objects.filter(pk__in=earning_ids).values_list("pk", "listener_id"))
    payout_of = dict(
        Payout.objects.filter(
            schedule=period.schedule, period_start=period.start, listener_id__in=set(listener_of.values())
        ).values_list("listener_id", "pk")
    )
    by_payout: dict[int, list[int]] = {}
    for earning_id, listener_id in listener_of.items():
        by_payout.setdefault(payout_of[listener_id], []).append(earning_id)
    now = timezone.now()
    for payout_id, ids in by_payout.items():
        ListenerPayout.objects.filter(pk__in=ids).update(
            payout_id=payout_id, status=ListenerPayout.Status.PAYABLE, updated_at=now
        )


def _payout_amounts_refresh_portable(payout_ids: list[int]) -> None:
    totals = (
        ListenerPayout.objects.filter(payout_id__in=payout_ids)
        .values("payout_id")
        .annotate(total=Sum(F("amount") - F("amount_reversed")))
    )
    now = timezone.now()
    for row in totals:
        Payout.objects.filter(pk=row["payout_id"]).update(amount=row["total"], updated_at=now)


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
    if dry_run or not execute:
        return summary

    resend_before = timezone.now() - _resend_after()
    after = 0
    while True:
        payout_ids = selectors.payout_ids_to_execute(
            schedule=period.schedule,
            period_start=period.start,
            resend_before=resend_before,
            after=after,
            limit=batch_size,
        )
        if not payout_ids:
            break
        for chunk in _chunks(payout_ids, EXECUTE_BATCH):
            try:
                for payout in payouts_execute(payout_ids=chunk, resend_before=resend_before):
                    _count_outcome(summary, payout)
            except Exception:
                # One batch's bug must not stop the others; it stays PENDING/PROCESSING for the sweeper.
                logger.exception("payouts %s..%s could not be executed", chunk[0], chunk[-1])
                summary.errors += len(chunk)
        if progress:
            progress(len(payout_ids))
        after = payout_ids[-1]
    return summary


def _count_outcome(summary: RunSummary, payout: Payout | None) -> None:
    if payout is None:
        return  # another worker has it
    if payout.status == Payout.Status.PAID:
        summary.paid += 1
        summary.amount_paid += payout.amount
    elif payout.status == Payout.Status.FAILED:
        summary.failed += 1
        summary.failures[payout.pk] = payout.failure_reason
    else:
        summary.in_flight += 1


def payouts_sweep_stuck(*, older_than: timedelta | None = None) -> int:
    """Finish payouts a crash or a timeout left PENDING or PROCESSING (any period)."""
    cutoff = timezone.now() - (older_than if older_than is not None else _resend_after())
    stuck = list(selectors.payouts_stuck(older_than=cutoff).values_list("pk", flat=True)[:1000])
    done = 0
    for chunk in _chunks(stuck, EXECUTE_BATCH):
        payouts = payouts_execute(payout_ids=chunk, resend_before=cutoff)
        done += sum(payout.status == Payout.Status.PAID for payout in payouts)
    return done


def payout_retry(*, payout_id: int) -> Payout:
    """An operator retries a failed payout: it collects the listener's payable earnings again (its
    own released ones and anything newer up to its period's cutoff) and is sent with a new attempt."""
    payout = Payout.objects.get(pk=payout_id)
    if payout.status != Payout.Status.FAILED:
        raise ValueError(f"Payout #{payout.pk} is {payout.status}, only failed payouts are retried.")
    period = Period(payout.schedule, payout.period_start, payout.period_end)
    payouts_collect(period=period, listener_ids=[payout.listener_id])
    payout.refresh_from_db()
    if payout.status == Payout.Status.PENDING:
        payout_execute(payout_id=payout.pk)
        payout.refresh_from_db()
    return payout


# --- Transfers --------------------------------------------------------------------------------------


def transfer_idempotency_key(*, payout_id: int, attempt: int) -> str:
    """`transfer-payout-<id>` for the first attempt. Stripe stores a refused request's answer under its
    key for 24 hours, so an attempt after a refusal needs its own key (`transfer-payout-<id>-<n>`);
    the transfer_group lookup before it keeps that from ever paying twice."""
    return f"transfer-payout-{payout_id}" if attempt <= 1 else f"transfer-payout-{payout_id}-{attempt}"


def payout_execute(*, payout_id: int, resend_before: datetime | None = None) -> Payout | None:
    """Send one payout's transfer and record it (see `payouts_execute`)."""
    done = payouts_execute(payout_ids=[payout_id], resend_before=resend_before)
    return done[0] if done else None


def payouts_execute(*, payout_ids: list[int], resend_before: datetime | None = None) -> list[Payout]:
    """Send these payouts' transfers and record them: claim (one transaction), Stripe (outside any
    transaction, a few calls at a time), record (one transaction). Payouts another worker holds, or
    that need nothing, are skipped. Raises nothing from Stripe: refusals fail the payout, timeouts
    leave it PROCESSING for the sweeper."""
    resend_before = resend_before or (timezone.now() - _resend_after())
    claimed, finished = _payouts_claim(payout_ids=payout_ids, resend_before=resend_before)
    if not claimed:
        return finished
    with ThreadPoolExecutor(max_workers=min(_transfer_concurrency(), len(claimed))) as pool:
        outcomes = list(pool.map(_transfer_send, claimed))
    sent = [
        (payout, outcome) for (payout, _), outcome in zip(claimed, outcomes, strict=True) if isinstance(outcome, dict)
    ]
    for (payout, _), outcome in zip(claimed, outcomes, strict=True):
        if isinstance(outcome, PermanentStripeError):
            finished.append(
                payout_transfer_failed(payout_id=payout.pk, attempt=payout.attempts, reason=_reason(outcome))
            )
        elif isinstance(outcome, TransientStripeError):
            logger.warning("payout %s: transfer outcome unknown (%s); the sweeper resends it", payout.pk, outcome)
            Payout.objects.filter(pk=payout.pk, status=Payout.Status.PROCESSING).update(
                failure_reason=f"Waiting to resend: {_reason(outcome)}"[:1000]
            )
            payout.failure_reason = f"Waiting to resend: {_reason(outcome)}"
            finished.append(payout)
    if sent:
        finished.extend(payouts_transfer_record(sent=sent))
    return finished


def _transfer_concurrency() -> int:
    return max(1, settings.PAYOUT_TRANSFER_CONCURRENCY)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _payouts_claim(*, payout_ids: list[int], resend_before: datetime) -> tuple[list[tuple[Payout, bool]], list[Payout]]:
    """Lock the payouts (skipping those another worker holds) and move the PENDING ones to PROCESSING,
    committed before any of them reaches Stripe. Returns (payout, resending) pairs to send, and the
    payouts settled without a transfer."""
    from billing.models import Clawback

    to_send: list[tuple[Payout, bool]] = []
    finished: list[Payout] = []
    with transaction.atomic():
        payouts = list(
            Payout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("listener__stripe_listener_account")
            .filter(pk__in=payout_ids, status__in=(Payout.Status.PENDING, Payout.Status.PROCESSING))
            .order_by("pk")
        )
        in_debt = set(
            Clawback.objects.filter(
                listener_id__in=[p.listener_id for p in payouts], status=Clawback.Status.DEBT
            ).values_list("listener_id", flat=True)
        )
        now = timezone.now()
        starting: list[Payout] = []
        resending: list[int] = []
        for payout in payouts:
            account = getattr(payout.listener, "stripe_listener_account", None)
            if payout.status == Payout.Status.PROCESSING:
                # It may have reached Stripe: resend only after its worker had time to record it.
                if payout.transfer_sent_at is None or payout.transfer_sent_at < resend_before:
                    to_send.append((payout, True))
                    resending.append(payout.pk)
                continue
            problem = "Nothing to transfer." if payout.amount <= 0 else ""
            if account is None:
                problem = "The listener has no Connect account."
            if problem:
                _payout_mark_failed(payout, problem)
                finished.append(payout)
                continue
            if payout.listener_id in in_debt:
                # Debts from clawbacks Stripe could not reverse are netted out when the amount becomes
                # final; the listener's payable already carries them, so the net is what we owe.
                net = debt_net_into_payout(payout_id=payout.pk, listener_id=payout.listener_id, gross=payout.amount)
                if net <= 0:
                    finished.append(_payout_settled_by_debt(payout))
                    continue
                payout.amount = net
                Payout.objects.filter(pk=payout.pk).update(amount=net)
            payout.status = Payout.Status.PROCESSING
            payout.attempts += 1
            payout.transfer_sent_at = now
            payout.failure_reason = ""
            payout.updated_at = now
            starting.append(payout)
            to_send.append((payout, False))
        if starting:
            # One UPDATE for the batch (bulk_update's CASE expressions cost more CPU than the transfers).
            Payout.objects.filter(pk__in=[p.pk for p in starting]).update(
                status=Payout.Status.PROCESSING,
                attempts=F("attempts") + 1,
                transfer_sent_at=now,
                failure_reason="",
                updated_at=now,
            )
        if resending:
            # Restart the clock, so a second sweeper leaves these to us.
            Payout.objects.filter(pk__in=resending).update(transfer_sent_at=now, updated_at=now)
    return to_send, finished


def _transfer_send(claim: tuple[Payout, bool]) -> dict | StripeGatewayError:
    """Stripe's transfer for this payout: the one it already has, or a new one. Runs in a thread and
    touches no database."""
    payout, resending = claim
    try:
        # A payout claimed from PENDING never reached Stripe (it is sent only after PROCESSING is
        # committed), so the lookup is needed only when resending or after a refused attempt.
        if resending or payout.attempts > 1:
            found = gateway.transfer_find_for_payout(payout_id=payout.pk)
            if found is not None:
                return found
        account = getattr(payout.listener, "stripe_listener_account", None)
        if account is None:
            return PermanentStripeError("The listener has no Connect account.")
        return gateway.transfer_create(
            payout_id=payout.pk,
            amount=payout.amount,
            currency=payout.currency,
            destination=account.stripe_account_id,
            listener_id=payout.listener_id,
            idempotency_key=transfer_idempotency_key(payout_id=payout.pk, attempt=payout.attempts),
        )
    except StripeGatewayError as error:
        return error


def _reason(error: Exception) -> str:
    code = getattr(error, "code", "")
    message = getattr(error, "message", str(error))
    return f"{code}: {message}" if code else message


def debt_net_into_payout(*, payout_id: int, listener_id: int, gross: int) -> int:
    from billing.clawback import debt_net_into_payout as net_into_payout  # billing imports this module

    return net_into_payout(payout_id=payout_id, listener_id=listener_id, gross=gross)


def _debt_recoveries_undo(payout: Payout) -> None:
    """A payout that sent nothing recovered no debt: the debts are owed again by the next payout."""
    from billing.models import Clawback, ClawbackRecovery

    for recovery in ClawbackRecovery.objects.select_related("clawback").filter(payout=payout):
        clawback = Clawback.objects.select_for_update().get(pk=recovery.clawback_id)
        clawback.amount_recovered -= recovery.amount
        clawback.status = Clawback.Status.DEBT
        clawback.save(update_fields=["amount_recovered", "status", "updated_at"])
        recovery.delete()


def _payout_settled_by_debt(payout: Payout) -> Payout:
    """The listener's debts took the whole payout: nothing to transfer, the earnings are settled."""
    payout.amount = 0
    payout.status = Payout.Status.PAID
    payout.paid_at = timezone.now()
    payout.failure_reason = "Nothing transferred: the listener's clawback debt took all of it."
    payout.save(update_fields=["amount", "status", "paid_at", "failure_reason", "updated_at"])
    ListenerPayout.objects.filter(payout=payout).update(status=ListenerPayout.Status.PAID, updated_at=timezone.now())
    return payout


def _payout_mark_failed(payout: Payout, reason: str) -> None:
    payout.status = Payout.Status.FAILED
    payout.failure_reason = reason
    payout.save(update_fields=["status", "failure_reason", "updated_at"])
    _debt_recoveries_undo(payout)
    # Back to the pool: the next run collects them again.
    ListenerPayout.objects.filter(payout=payout, status=ListenerPayout.Status.PAYABLE).update(
        payout=None, updated_at=timezone.now()
    )


@transaction.atomic
def payout_transfer_failed(*, payout_id: int, attempt: int, reason: str) -> Payout:
    payout = Payout.objects.select_for_update().get(pk=payout_id)
    if payout.status == Payout.Status.PROCESSING and payout.attempts == attempt:
        _payout_mark_failed(payout, reason)
    return payout


@transaction.atomic
def payouts_transfer_record(*, sent: list[tuple[Payout, dict]]) -> list[Payout]:
    """Stripe accepted these transfers: the payouts are paid, their earnings too, and the ledger moves
    each amount from what we owe the listener to money that left our balance (`transfer-payout-<id>`).

    Done for a batch at once (a constant number of queries per batch, not per payout). Only payouts
    still PROCESSING with the same attempt are recorded, under their row locks, so a late or
    concurrent recorder changes nothing."""
    attempts = {payout.pk: payout.attempts for payout, _ in sent}
    transfers = {payout.pk: transfer for payout, transfer in sent}
    payouts = list(
        Payout.objects.select_for_update()
        .filter(pk__in=list(transfers), status=Payout.Status.PROCESSING)
        .order_by("pk")
    )
    now = timezone.now()
    recorded = []
    for payout in payouts:
        transfer = transfers[payout.pk]
        if payout.attempts != attempts[payout.pk]:
            continue
        if transfer["amount"] != payout.amount:
            logger.error(
                "payout %s: transfer %s is %s, not %s", payout.pk, transfer["id"], transfer["amount"], payout.amount
            )
        payout.status = Payout.Status.PAID
        payout.stripe_transfer_id = transfer["id"]
        payout.amount = transfer["amount"]
        payout.paid_at = now
        payout.updated_at = now
        payout.failure_reason = ""
        recorded.append(payout)
    if not recorded:
        return list(Payout.objects.filter(pk__in=list(transfers)))
    _payouts_mark_paid(recorded, now=now)
    ListenerPayout.objects.filter(payout__in=recorded).update(status=ListenerPayout.Status.PAID, updated_at=now)
    _ledger_book_transfers(recorded)
    return recorded


def _payouts_mark_paid(payouts: list[Payout], *, now: datetime) -> None:
    """One `UPDATE ... FROM (VALUES ...)` for the batch: each payout gets its own transfer id."""
    if connection.vendor != "postgresql":  # the SQLite development database: one update per payout
        for payout in payouts:
            Payout.objects.filter(pk=payout.pk).update(
                status=Payout.Status.PAID,
                stripe_transfer_id=payout.stripe_transfer_id,
                amount=payout.amount,
                paid_at=now,
                failure_reason="",
                updated_at=now,
            )
        return
    rows = ", ".join(["(%s, %s, %s)"] * len(payouts))
    params: list = []
    for payout in payouts:
        params += [payout.pk, payout.stripe_transfer_id, payout.amount]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Payout._meta.db_table} AS p SET status = %s, stripe_transfer_id = v.transfer_id, "
            f"amount = v.amount, paid_at = %s, failure_reason = '', updated_at = %s "
            f"FROM (VALUES {rows}) AS v(id, transfer_id, amount) WHERE p.id = v.id",
            [Payout.Status.PAID, now, now, *params],
        )


def _ledger_book_transfers(payouts: list[Payout]) -> None:
    """Book the batch's transfers (listener payable → platform cash) under `transfer-payout-<id>`. The
    payouts are locked and PROCESSING, so no other worker books them."""
    ledger.ledger_post_many(
        [
            ledger.Posting(
                key=f"transfer-payout-{p.pk}",
                kind="payout_transfer",
                currency=p.currency,
                description=f"Payout #{p.pk} to listener {p.listener_id} ({p.period_start})",
                metadata={"payout_id": p.pk, "transfer_id": p.stripe_transfer_id, "attempt": p.attempts},
                lines=[
                    ledger.debit(ledger.listener_payable(p.listener_id), p.amount),
                    ledger.credit(ledger.PLATFORM_CASH, p.amount),
                ],
            )
            for p in payouts
            if p.amount > 0
        ]
    )


@transaction.atomic
def payout_transfer_reversed(*, transfer: dict) -> bool:
    """Stripe reversed (part of) a payout's transfer: the money is back in our balance and owed to the
    listener again, as the ledger shows. Booked once per new reversed total; never re-pays by itself
    (a reversal is a decision, by us for a refund or by an operator)."""
    payout = Payout.objects.select_for_update().filter(stripe_transfer_id=transfer["id"]).first()
    if payout is None:
        return False
    new_total = min(int(transfer.get("amount_reversed") or 0), payout.amount)
    delta = new_total - payout.amount_reversed
    if delta <= 0:
        return False
    ledger.ledger_post(
        key=f"transfer-reversal-payout-{payout.pk}-{new_total}",
        kind="payout_transfer_reversal",
        currency=payout.currency,
        description=f"Reversal of payout #{payout.pk} ({delta} of {payout.amount})",
        lines=[
            ledger.debit(ledger.PLATFORM_CASH, delta),
            ledger.credit(ledger.listener_payable(payout.listener_id), delta),
        ],
        metadata={"payout_id": payout.pk, "transfer_id": transfer["id"], "amount_reversed": new_total},
    )
    payout.amount_reversed = new_total
    if new_total >= payout.amount:
        payout.status = Payout.Status.REVERSED
    payout.save(update_fields=["amount_reversed", "status", "updated_at"])
    return True
