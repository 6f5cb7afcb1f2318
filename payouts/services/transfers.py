"""Transfers: claim payouts, send their Connect transfers, record what Stripe accepted or refused."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import ledger
from billing.models import LedgerKind
from billing.stripe_gateway import PermanentStripeError, StripeGatewayError, TransientStripeError
from billing.stripe_gateway import connect as gateway
from common import locks
from payouts import selectors
from payouts.models import Clawback, ListenerPayout, Payout, StripeListenerAccount
from payouts.services.clawbacks import (
    clawbacks_cancel_for_failed_payout,
    credits_for_failed_payout,
    credits_recheck,
    debt_net_into_payout,
    debt_recoveries_undo,
)
from payouts.services.connect import connect_account_refresh
from payouts.services.reversals import payout_transfer_reversed
from payouts.services.sql import payout_amounts_refresh, payouts_mark_paid
from workers.notify import notification_enqueue, notification_enqueue_many

logger = logging.getLogger(__name__)


EXECUTE_BATCH = 100

# The start of `failure_reason` of a payout kept PENDING because the platform's available Stripe
# balance could not cover its transfer (the funds of recent charges are still pending on Stripe):
# nothing was sent, and the next run (or the sweeper) sends it once the funds are available.
DEFERRED = "Deferred: "

# The start of `failure_reason` of a payout failed before its transfer because the listener's account
# could not receive it (payouts disabled, or the transfers capability not active): nothing was sent,
# its earnings went back to the pool, and the runs leave them there until the account is ready.
HELD = "Held: "

# Stripe's code for a transfer to an account whose `transfers` capability is not active.
INSUFFICIENT_CAPABILITIES = "insufficient_capabilities_for_transfer"


def resend_after() -> timedelta:
    # How long a PROCESSING payout is left to the worker that sent it before another one looks it up.
    return timedelta(seconds=settings.PAYOUT_RESEND_AFTER_SECONDS)


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
    leave it PROCESSING for the sweeper, and a transfer the available balance cannot cover is
    deferred (see `TransferPipeline`). An error recording them is raised."""
    with TransferPipeline(resend_before=resend_before, contain_errors=False) as pipeline:
        finished = pipeline.submit(payout_ids)
        finished.extend(pipeline.close())
    return finished


class TransferPipeline:
    """Batches of payouts through claim → Stripe → record, one batch's transfers in flight while the
    database work of its neighbours is done: `submit` claims a batch and hands its transfers to the
    thread pool, then records the batch before it, whose transfers went out while this one was
    claimed. A run's database work, its Stripe calls and the emulator's (or Stripe's) side overlap
    instead of taking turns; nothing else changes for a payout (claimed PROCESSING and committed before
    its transfer leaves, recorded under its locks with the same attempt, as `payouts_execute` did).

    What is paid is bounded by what Stripe has available: card funds stay pending for days (two in
    test mode for a US account) and a transfer beyond the available balance is refused. The balance
    is read once, with nothing of ours in flight, and tracked here as transfers are handed out; the
    claimed payouts take from it in id order (oldest first) and those that do not fit go back to
    PENDING without reaching Stripe, with the reason, for the next run. Before deferring, the balance
    is read again once (funds may have become available since), again with nothing in flight. A
    payout being resent may already have its transfer, so it takes nothing from the bound. When the
    balance cannot be read, the batch is sent unbounded and Stripe's own refusal (`balance_insufficient`,
    also what another run taking the balance first gets) defers what does not fit.

    (Talkpay pays a period's earnings in one transfer per listener; a Stripe transfer can name only
    one `source_transaction` charge, so transfers are paid from the available balance.)

    `contain_errors`: an error recording a batch is logged and counted in `errors` (its payouts stay
    PROCESSING for the sweeper) instead of raised, so one batch's bug does not stop a run."""

    def __init__(self, *, resend_before: datetime | None = None, contain_errors: bool = True) -> None:
        self.resend_before = resend_before or (timezone.now() - resend_after())
        self.contain_errors = contain_errors
        self.errors = 0
        self._pool = ThreadPoolExecutor(max_workers=_transfer_concurrency(), thread_name_prefix="transfer")
        self._in_flight: deque[tuple[list[tuple[Payout, bool]], list[Future]]] = deque()
        self._finished: list[Payout] = []
        # What is left of Stripe's available balance, per currency, after the transfers handed out.
        self._balance: dict[str, int] | None = None

    def __enter__(self) -> TransferPipeline:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.close()
            else:
                # Record what Stripe accepted before the error goes up; what cannot be recorded stays
                # PROCESSING for the sweeper (which finds the transfer by its group).
                self.contain_errors = True
                self._drain()
        finally:
            self._pool.shutdown(wait=True)

    def submit(self, payout_ids: list[int]) -> list[Payout]:
        """Claim these payouts and send their transfers; returns the payouts finished meanwhile (of this
        batch: settled without a transfer or deferred; of the batch before: recorded)."""
        claimed, finished = _payouts_claim(payout_ids=payout_ids, resend_before=self.resend_before)
        self._finished.extend(finished)
        if claimed:
            claimed = self._bound_by_balance(claimed)
        if claimed:
            self._in_flight.append((claimed, [self._pool.submit(_transfer_send, claim) for claim in claimed]))
        while len(self._in_flight) > 1:
            self._record_oldest()
        return self._take_finished()

    def close(self) -> list[Payout]:
        """Record what is still in flight; returns the payouts finished meanwhile."""
        self._drain()
        return self._take_finished()

    def _take_finished(self) -> list[Payout]:
        finished, self._finished = self._finished, []
        return finished

    def _drain(self) -> None:
        while self._in_flight:
            self._record_oldest()

    def _record_oldest(self) -> None:
        claimed, futures = self._in_flight.popleft()
        outcomes = [future.result() for future in futures]  # _transfer_send returns its errors
        try:
            self._finished.extend(self._record(claimed, outcomes))
        except Exception:
            if not self.contain_errors:
                raise
            logger.exception("payouts %s..%s could not be recorded", claimed[0][0].pk, claimed[-1][0].pk)
            self.errors += len(claimed)

    def _record(self, claimed: list[tuple[Payout, bool]], outcomes: list) -> list[Payout]:
        finished: list[Payout] = []
        sent = [
            (payout, outcome)
            for (payout, _), outcome in zip(claimed, outcomes, strict=True)
            if isinstance(outcome, dict)
        ]
        refused_for_capability: list[str] = []
        for (payout, _), outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, PermanentStripeError) and outcome.code == INSUFFICIENT_CAPABILITIES:
                # The capability changed on Stripe after we last heard (or its event is still on the way):
                # the payout fails, its earnings go back to the pool unpaid, and the account is read back
                # from Stripe below, so the runs hold them until the capability is active again.
                finished.append(
                    payout_transfer_failed(payout_id=payout.pk, attempt=payout.attempts, reason=_reason(outcome))
                )
                account = getattr(payout.listener, "stripe_listener_account", None)
                if account is not None:
                    refused_for_capability.append(account.stripe_account_id)
            elif isinstance(outcome, PermanentStripeError) and outcome.code == "balance_insufficient":
                # Another run took the balance first, or it was read before a refund: the same deferral,
                # and the balance is read again before the next batch is bounded.
                self._balance = None
                reason = f"{DEFERRED}Stripe refused the transfer ({_reason(outcome)}); the next run retries it."
                logger.warning("payout %s deferred: %s", payout.pk, _reason(outcome))
                finished.extend(payouts_defer(deferrals=[(payout.pk, payout.attempts, reason)], sent=True))
            elif isinstance(outcome, PermanentStripeError):
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
        for account_id in dict.fromkeys(refused_for_capability):
            _account_refresh_after_refusal(account_id)
        return finished

    def _read_balance(self) -> bool:
        """Stripe's available balance, read with none of our transfers in flight (one in flight may or
        may not be in it yet). False when it cannot be read."""
        self._drain()
        try:
            self._balance = gateway.platform_balance_available()
        except StripeGatewayError as error:
            logger.warning("could not read the platform balance (%s); sending the transfers unbounded", error)
            self._balance = None
            return False
        return True

    def _bound_by_balance(self, claimed: list[tuple[Payout, bool]]) -> list[tuple[Payout, bool]]:
        if all(resending for _, resending in claimed):
            return claimed
        fresh = self._balance is None
        if fresh and not self._read_balance():
            return claimed
        to_send, short = self._fit(claimed)
        if short and not fresh:
            if not self._read_balance():
                return to_send + short
            more, short = self._fit(short)
            to_send += more
        if not short:
            return to_send
        have = self._balance or {}
        deferrals = [
            (
                payout.pk,
                payout.attempts,
                f"{DEFERRED}the platform's available Stripe balance ({have.get(payout.currency, 0)} {payout.currency}"
                f" left for this run) cannot cover the transfer of {payout.amount} yet: the charges' funds are"
                " still pending on Stripe. The next run retries it.",
            )
            for payout, _ in short
        ]
        logger.warning(
            "payouts %s deferred: the platform's available balance cannot cover them yet", [p.pk for p, _ in short]
        )
        self._finished.extend(payouts_defer(deferrals=deferrals, sent=False))
        return to_send

    def _fit(self, claimed: list[tuple[Payout, bool]]) -> tuple[list[tuple[Payout, bool]], list[tuple[Payout, bool]]]:
        """Those the tracked balance covers, in id order (taking from it), and those it does not."""
        left = self._balance if self._balance is not None else {}
        to_send: list[tuple[Payout, bool]] = []
        short: list[tuple[Payout, bool]] = []
        for payout, resending in claimed:
            have = left.get(payout.currency, 0)
            if resending or payout.amount <= have:
                if not resending:
                    left[payout.currency] = have - payout.amount
                to_send.append((payout, resending))
            else:
                short.append((payout, resending))
        return to_send, short


def _account_refresh_after_refusal(account_id: str) -> None:
    """Stripe refused a transfer for want of the transfers capability: read the account back (after
    the failure is committed, so no payout lock waits on Stripe). When Stripe cannot be read now, the
    next run's transfer is refused the same way, fails its payout the same way and reads it again."""
    try:
        connect_account_refresh(account_id=account_id)
    except StripeGatewayError as error:
        logger.warning("could not read account %s back from Stripe after a refused transfer: %s", account_id, error)


def account_not_ready_reason(account: StripeListenerAccount) -> str:
    """Why a payout to this account is not sent, for the payout's failure_reason and the run's report."""
    if not (account.payouts_enabled and account.details_submitted):
        state = f"payouts not enabled: {account.disabled_reason}" if account.disabled_reason else "payouts not enabled"
    else:
        reason = f": {account.transfers_capability_reason}" if account.transfers_capability_reason else ""
        state = f"transfers capability {account.transfers_capability}{reason}"
    return (
        f"{HELD}the listener's Stripe account cannot receive transfers ({state}); the earnings are kept, unpaid,"
        " for a run after Stripe makes it ready."
    )


def _transfer_concurrency() -> int:
    return max(1, settings.PAYOUT_TRANSFER_CONCURRENCY)


def chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _payouts_claim(*, payout_ids: list[int], resend_before: datetime) -> tuple[list[tuple[Payout, bool]], list[Payout]]:
    """Lock the payouts (skipping those another worker holds) and move the PENDING ones to PROCESSING,
    committed before any of them reaches Stripe. Returns (payout, resending) pairs to send, and the
    payouts settled without a transfer."""
    to_send: list[tuple[Payout, bool]] = []
    finished: list[Payout] = []
    with transaction.atomic():
        _earnings_recheck(payout_ids=payout_ids)
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
            problem = (
                "Nothing payable any more (refunded, disputed or held since it was collected)."
                if payout.amount <= 0
                else ""
            )
            if account is None:
                problem = "The listener has no Connect account."
            elif not account.can_receive_payouts:
                # What Stripe last told us, checked again at the transfer (DESIGN money rule 5): the
                # earnings go back unpaid and the runs hold them until Stripe says the account is ready.
                problem = account_not_ready_reason(account)
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


@transaction.atomic
def payouts_defer(*, deferrals: list[tuple[int, int, str]], sent: bool) -> list[Payout]:
    """Put these claimed payouts (id, attempt, reason) back to PENDING: nothing was transferred, so the
    debts netted into them are owed again and a clawback against them has nothing to take back; their
    earnings stay attached and their amount is again the net of those, for the next attempt. `sent`
    says whether the attempt reached Stripe (a refused request keeps its idempotency key for 24 hours,
    so the next attempt needs a new one); an attempt that never left is not counted."""
    ids = [pk for pk, _, _ in deferrals]
    attempts = {pk: attempt for pk, attempt, _ in deferrals}
    reasons = {pk: reason for pk, _, reason in deferrals}
    _earnings_lock(payout_ids=ids)
    payouts = list(Payout.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    deferred = []
    for payout in payouts:
        if payout.status != Payout.Status.PROCESSING or payout.attempts != attempts[payout.pk]:
            continue  # recorded or resent by someone else meanwhile
        debt_recoveries_undo(payout=payout)
        clawbacks_cancel_for_failed_payout(payout=payout)
        payout.status = Payout.Status.PENDING
        payout.failure_reason = reasons[payout.pk][:1000]
        if not sent:
            payout.attempts -= 1
            payout.transfer_sent_at = None
        payout.save(update_fields=["status", "failure_reason", "attempts", "transfer_sent_at", "updated_at"])
        deferred.append(payout)
    if deferred:
        payout_amounts_refresh([p.pk for p in deferred])
        amounts = dict(Payout.objects.filter(pk__in=[p.pk for p in deferred]).values_list("pk", "amount"))
        for payout in deferred:
            payout.amount = amounts[payout.pk]
    return payouts


def _earnings_recheck(*, payout_ids: list[int]) -> None:
    """What a pending payout pays is decided here, under the locks, not when it was collected: its
    earnings are locked (earning before payout, common.locks), those no longer payable (refunded,
    disputed, held by an operator, a refund in flight) go back to the pool, and the payout's amount is
    the net of what remains. A constant number of queries for the whole batch."""
    list(
        locks.lock(ListenerPayout.objects.filter(payout_id__in=_pending_ids(payout_ids)).order_by("pk")).values_list(
            "pk", flat=True
        )
    )
    # New statements from here on: they see whatever committed while we waited for the locks (a payout
    # another worker claimed meanwhile is no longer PENDING, and its earnings are left alone).
    pending = _pending_ids(payout_ids)
    if not pending:
        return
    keep = selectors.earning_ids_still_payable(pending_payout_ids=pending)
    dropped = (
        ListenerPayout.objects.filter(payout_id__in=pending)
        .exclude(pk__in=keep)
        .update(payout=None, updated_at=timezone.now())
    )
    dropped += credits_recheck(pending_payout_ids=pending)
    # Earnings shrink (a partial refund) or leave (a hold) without passing through here.
    Payout.objects.filter(pk__in=pending).exclude(earnings__isnull=False).update(amount=0)
    payout_amounts_refresh(pending)
    if dropped:
        logger.info("payouts %s: %s earnings no longer payable went back to the pool", pending, dropped)


def _pending_ids(payout_ids: list[int]) -> list[int]:
    """Which of these payouts are PENDING, read by primary key alone. Joining `payout.status = 'pending'`
    let PostgreSQL scan the status index: during a run the period's thousands of pending payouts
    (which the statistics, taken before they existed, put at a handful), for every batch of 100, which
    made a run's time grow with the square of its size."""
    rows = Payout.objects.filter(pk__in=payout_ids).values_list("pk", "status")
    return sorted(pk for pk, status in rows if status == Payout.Status.PENDING)


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
    notification_enqueue("payouts.notify_payout_failed", payout.pk)
    debt_recoveries_undo(payout=payout)
    # Nothing left: what a refund took from an earning while this transfer was in flight stays with us.
    clawbacks_cancel_for_failed_payout(payout=payout)
    credits_for_failed_payout(payout=payout)
    now = timezone.now()
    attached = ListenerPayout.objects.filter(payout=payout).exclude(status=ListenerPayout.Status.PAID)
    attached.filter(amount__lte=F("amount_reversed")).update(status=ListenerPayout.Status.CANCELLED)
    # Back to the pool, whatever their state (a held one is paid when its dispute is won): the next run
    # collects those that are payable then.
    attached.update(payout=None, updated_at=now)


@transaction.atomic
def payout_transfer_failed(*, payout_id: int, attempt: int, reason: str) -> Payout:
    _earnings_lock(payout_ids=[payout_id])
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
    _earnings_lock(payout_ids=list(transfers))
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
    payouts_mark_paid(recorded, now=now)
    ListenerPayout.objects.filter(payout__in=recorded).update(status=ListenerPayout.Status.PAID, updated_at=now)
    _ledger_book_transfers(recorded)
    for payout in recorded:
        if transfers[payout.pk].get("amount_reversed"):
            # Reversed before we recorded it (a crash, then the sweeper found it): its transfer.reversed
            # event found no payout to apply to, so the reversal is applied now.
            payout_transfer_reversed(transfer=transfers[payout.pk])
    notification_enqueue_many("payouts.notify_payouts_sent", [p.pk for p in recorded])
    return recorded


def _earnings_lock(*, payout_ids: list[int]) -> None:
    """The earnings of these payouts, locked before the payouts themselves (common.locks order)."""
    list(
        locks.lock(ListenerPayout.objects.filter(payout_id__in=payout_ids).order_by("pk")).values_list("pk", flat=True)
    )


def _ledger_book_transfers(payouts: list[Payout]) -> None:
    """Book the batch's transfers (listener payable → platform cash) under `transfer-payout-<id>`. The
    payouts are locked and PROCESSING, so no other worker books them."""
    ledger.ledger_post_many(
        [
            ledger.Posting(
                key=f"transfer-payout-{p.pk}",
                kind=LedgerKind.PAYOUT_TRANSFER,
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
