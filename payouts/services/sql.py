"""Vendor SQL for the payout batches, each beside its portable fallback (SQLite, for development).

One statement per batch on PostgreSQL (`UPDATE ... FROM unnest()` / `VALUES`); plain ORM updates elsewhere."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone

from payouts.models import ListenerCredit, ListenerPayout, Payout
from payouts.periods import Period

logger = logging.getLogger(__name__)


def earnings_attach(*, earning_ids: list[int], period: Period) -> None:
    """Point each earning at its listener's payout of the period, in one `UPDATE ... FROM` join
    (a correlated subquery, or `= ANY(array)`, was planned as a scan and took a second per batch;
    joining `unnest()` makes it index lookups)."""
    if connection.vendor != "postgresql":
        earnings_attach_portable(earning_ids=earning_ids, period=period)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ListenerPayout._meta.db_table} AS e SET payout_id = p.id, status = %s, updated_at = %s "
            f"FROM unnest(%s::bigint[]) AS chosen(id), {Payout._meta.db_table} AS p "
            "WHERE e.id = chosen.id AND p.listener_id = e.listener_id AND p.schedule = %s AND p.period_start = %s",
            [ListenerPayout.Status.PAYABLE, timezone.now(), earning_ids, period.schedule, period.start],
        )


def payout_amounts_refresh(payout_ids: list[int]) -> None:
    """A pending payout's amount is, by definition, the net of what is attached to it."""
    if connection.vendor != "postgresql":
        payout_amounts_refresh_portable(payout_ids)
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
    _credits_add(payout_ids)


def _credits_add(payout_ids: list[int]) -> None:
    """Payouts carrying credits (payouts.models.ListenerCredit, rare) pay them on top of their
    earnings: their amount is set again from both."""
    with_credits = list(
        ListenerCredit.objects.filter(payout_id__in=payout_ids, cancelled_at__isnull=True)
        .values("payout_id")
        .annotate(total=Sum("amount"))
        .values_list("payout_id", "total")
    )
    now = timezone.now()
    for payout_id, credits in with_credits:
        earned = ListenerPayout.objects.filter(payout_id=payout_id).aggregate(
            total=Sum(F("amount") - F("amount_reversed"))
        )["total"]
        Payout.objects.filter(pk=payout_id).update(amount=(earned or 0) + credits, updated_at=now)


def earnings_attach_portable(*, earning_ids: list[int], period: Period) -> None:
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


def payout_amounts_refresh_portable(payout_ids: list[int]) -> None:
    totals = (
        ListenerPayout.objects.filter(payout_id__in=payout_ids)
        .values("payout_id")
        .annotate(total=Sum(F("amount") - F("amount_reversed")))
    )
    now = timezone.now()
    for row in totals:
        Payout.objects.filter(pk=row["payout_id"]).update(amount=row["total"], updated_at=now)
    _credits_add(payout_ids)


def payouts_mark_paid(payouts: list[Payout], *, now: datetime) -> None:
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
