"""Reads of the payouts app: which earnings are payable, which are held and why, payouts to list."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from django.db.models import Case, CharField, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When

from billing import ledger
from billing.models import LedgerEntry, LedgerKind, Refund
from booking.models import Booking
from payouts.models import (
    CapabilityStatus,
    ListenerCredit,
    ListenerPayout,
    ListenerPayoutSettings,
    Payout,
    Schedule,
    StripeListenerAccount,
)

UNPAID = (ListenerPayout.Status.PENDING, ListenerPayout.Status.PAYABLE)


def _schedule_q(schedule: str) -> Q:
    """Of listeners on this schedule (those without a settings row are on the default one, weekly).
    A correlated EXISTS, not a join through the user: the join had PostgreSQL read every user for each
    page of `listener_ids_due`, instead of the earnings index in listener order."""
    if schedule == Schedule.WEEKLY:
        other = ListenerPayoutSettings.objects.filter(listener_id=OuterRef("listener_id")).exclude(
            schedule=Schedule.WEEKLY
        )
        return ~Q(Exists(other))
    return Q(Exists(ListenerPayoutSettings.objects.filter(listener_id=OuterRef("listener_id"), schedule=schedule)))


def _account_ready() -> QuerySet[StripeListenerAccount]:
    """The listener's Connect account can take a transfer now: onboarded, payouts enabled, and the
    `transfers` capability active (Stripe refuses a transfer without it, whatever payouts_enabled says).
    For an EXISTS correlated on `listener_id`."""
    return StripeListenerAccount.objects.filter(
        listener_id=OuterRef("listener_id"),
        payouts_enabled=True,
        details_submitted=True,
        transfers_capability=CapabilityStatus.ACTIVE,
    )


def _earnings_due(*, schedule: str, cutoff: datetime) -> QuerySet[ListenerPayout]:
    return ListenerPayout.objects.filter(
        _schedule_q(schedule),
        payout__isnull=True,
        status__in=UNPAID,
        payable_at__lt=cutoff,
    ).filter(_payable_now_q())


def earnings_payable(*, schedule: str, cutoff: datetime) -> QuerySet[ListenerPayout]:
    """Earnings a run with this cutoff pays: session completed (or cancelled late), hold passed before the cutoff, not
    refunded or disputed, in no payout yet, of listeners on this schedule who are not held by an
    operator and whose Connect account can receive transfers (see `_account_ready`)."""
    return _earnings_due(schedule=schedule, cutoff=cutoff).filter(Exists(_account_ready()))


def listeners_held_by_account(*, schedule: str, cutoff: datetime) -> dict[str, int]:
    """Listeners a run with this cutoff would pay but for their Connect account, by reason (the
    `earnings_held_for_listener` reasons): their earnings stay unpaid, in no payout, for a later run.
    One query, returning a row per held listener only."""
    accounts = StripeListenerAccount.objects.filter(listener_id=OuterRef("listener_id"))
    reason = Case(
        When(~Q(Exists(accounts)), then=Value("connect_account_missing")),
        When(
            Exists(accounts.exclude(payouts_enabled=True, details_submitted=True)),
            then=Value("connect_account_not_ready"),
        ),
        default=Value("transfers_capability_not_active"),
        output_field=CharField(),
    )
    held = (
        _earnings_due(schedule=schedule, cutoff=cutoff)
        .exclude(Exists(_account_ready()))
        .annotate(reason=reason)
        .order_by()
        .values_list("reason", "listener_id")
        .distinct()
    )
    return dict(Counter(reason for reason, _ in held))


# Refunds asked of Stripe that have not settled: the listener's share of them may still go back.
REFUNDS_IN_FLIGHT = (Refund.Status.PENDING, Refund.Status.REQUESTED)


def _payable_now_q() -> Q:
    """What makes an earning payable at this moment, whatever a payout run saw before: something left
    after reversals, the session over (a booking cancelled late leaves the listener what the talker was
    not refunded, billing.refunds), no refund of its payment in flight (its share is held back whole
    until Stripe settles it), and no operator hold on the listener."""
    in_flight = Refund.objects.filter(payment_id=OuterRef("payment_id"), status__in=REFUNDS_IN_FLIGHT)
    operator_hold = ListenerPayoutSettings.objects.filter(listener_id=OuterRef("listener_id"), payouts_held=True)
    return (
        Q(amount__gt=F("amount_reversed"))
        & Q(booking__status__in=(Booking.Status.COMPLETED, Booking.Status.CANCELLED))
        & ~Q(Exists(in_flight))
        & ~Q(Exists(operator_hold))
    )


def earning_ids_still_payable(*, pending_payout_ids: list[int]) -> list[int]:
    """Of the earnings attached to these payouts (the caller read them PENDING under the earnings'
    locks), those still payable now: checked again when the transfer is about to be sent (DESIGN money
    rule 5), in one query for the whole batch."""
    return list(
        ListenerPayout.objects.filter(payout_id__in=pending_payout_ids, status=ListenerPayout.Status.PAYABLE)
        .filter(_payable_now_q())
        .values_list("pk", flat=True)
    )


def credits_payable(*, schedule: str) -> QuerySet[ListenerCredit]:
    """Credits (money owed to a listener again, payouts.models.ListenerCredit) a run pays: owed, in no
    payout, of listeners on this schedule whose account can receive payouts, and payable now."""
    return (
        ListenerCredit.objects.filter(_schedule_q(schedule), payout__isnull=True, cancelled_at__isnull=True)
        .filter(credit_payable_now_q())
        .filter(Exists(_account_ready()))
    )


def credit_payable_now_q() -> Q:
    """Paid like an earning (DESIGN money rule 5): not while the payment it came from has a refund in
    flight or an open dispute, nor while an operator holds the listener."""
    from billing.models import Dispute

    in_flight = Refund.objects.filter(payment_id=OuterRef("earning__payment_id"), status__in=REFUNDS_IN_FLIGHT)
    disputed = Dispute.objects.filter(payment_id=OuterRef("earning__payment_id")).exclude(status__in=Dispute.CLOSED)
    operator_hold = ListenerPayoutSettings.objects.filter(listener_id=OuterRef("listener_id"), payouts_held=True)
    return ~Q(Exists(in_flight)) & ~Q(Exists(disputed)) & ~Q(Exists(operator_hold))


def listener_ids_due(*, schedule: str, cutoff: datetime, after: int = 0, limit: int = 500) -> list[int]:
    """The next page of listeners (ascending id, keyset) with something payable: earnings, or a credit."""
    earnings = earnings_payable(schedule=schedule, cutoff=cutoff).filter(listener_id__gt=after)
    ids = list(earnings.order_by("listener_id").values_list("listener_id", flat=True).distinct()[:limit])
    credited = credits_payable(schedule=schedule).filter(listener_id__gt=after)
    if len(ids) == limit:
        credited = credited.filter(listener_id__lt=ids[-1])
    extra = set(credited.values_list("listener_id", flat=True).distinct()[:limit])
    return sorted(set(ids) | extra)[:limit] if extra else ids


def payout_ids_to_execute(
    *, schedule: str, period_start, resend_before: datetime, after: int = 0, limit: int = 500
) -> list[int]:
    """Payouts of the period not sent yet, and sent ones whose outcome was never saved (a crash or a
    timeout) for long enough that no other worker is still waiting on Stripe for them."""
    return list(
        Payout.objects.filter(schedule=schedule, period_start=period_start, id__gt=after)
        .filter(
            Q(status=Payout.Status.PENDING) | Q(status=Payout.Status.PROCESSING, transfer_sent_at__lt=resend_before)
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def payout_ids_pending_before(*, schedule: str, period_start, after: int = 0, limit: int = 500) -> list[int]:
    """Payouts of earlier periods of this schedule still PENDING: deferred because the available balance
    could not cover them (payouts.services.transfers.DEFERRED), or left by a crash before they were sent."""
    return list(
        Payout.objects.filter(
            schedule=schedule, period_start__lt=period_start, status=Payout.Status.PENDING, id__gt=after
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def payouts_stuck(*, older_than: datetime) -> QuerySet[Payout]:
    return Payout.objects.filter(
        Q(status=Payout.Status.PENDING, created_at__lt=older_than)
        | Q(status=Payout.Status.PROCESSING, transfer_sent_at__lt=older_than)
    ).order_by("id")


def payout_list_for_user(*, user) -> QuerySet[Payout]:
    return Payout.objects.filter(listener=user).order_by("-period_start", "-id")


def earnings_held_for_listener(*, listener_id: int) -> dict:
    """Why this listener's completed earnings are not being paid, and how much waits: the "visibly
    held" part of the contract (shown by the Connect status endpoint and the admin)."""
    account = StripeListenerAccount.objects.filter(listener_id=listener_id).first()
    payout_settings = ListenerPayoutSettings.objects.filter(listener_id=listener_id).first()
    reasons = []
    if account is None:
        reasons.append("connect_account_missing")
    elif not (account.payouts_enabled and account.details_submitted):
        reasons.append("connect_account_not_ready")
    elif not account.transfers_active:
        # Onboarded and payouts enabled, but Stripe refuses transfers until the capability is active
        # (account.transfers_capability and its reason say why: a review, missing information...).
        reasons.append("transfers_capability_not_active")
    if payout_settings is not None and payout_settings.payouts_held:
        reasons.append("held_by_operator")
    unpaid = ListenerPayout.objects.filter(
        listener_id=listener_id, payout__isnull=True, status__in=UNPAID, payable_at__isnull=False
    ).aggregate(total=Sum(F("amount") - F("amount_reversed")))["total"]
    disputed = ListenerPayout.objects.filter(listener_id=listener_id, status=ListenerPayout.Status.HELD).aggregate(
        total=Sum(F("amount") - F("amount_reversed"))
    )["total"]
    return {
        "reasons": reasons,
        "held_amount": (unpaid or 0) if reasons else 0,
        "disputed_amount": disputed or 0,
    }


def earning_list_for_listener(*, listener_id: int) -> QuerySet[ListenerPayout]:
    return (
        ListenerPayout.objects.filter(listener_id=listener_id)
        .select_related("booking", "payment", "payout")
        .order_by("-created_at", "-id")
    )


def listener_earnings_summary(*, listener_id: int) -> dict[str, int]:
    """From the ledger, in cents: `pending_earnings` is what the platform owes the listener now (their
    payable balance), `total_earned` everything ever credited to them minus refund reversals."""
    code = ledger.listener_payable(listener_id)
    earned = (
        LedgerEntry.objects.filter(account__code=code, transaction__kind__in=LedgerKind.earnings()).aggregate(
            total=Sum("amount")
        )["total"]
        or 0
    )
    return {"pending_earnings": ledger.balance(code), "total_earned": -earned}
