"""The one lock order. Every transaction that locks several rows locks them in this order, so two
transactions never wait on each other in a cycle (PostgreSQL would kill one as a deadlock):

    subscription → payment → booking → earning → dispute / refund → payout → clawback

A webhook about a refund therefore locks the payment first, even when it changes only the refund;
a payout run locks its payouts, then the clawbacks it nets; a paid invoice locks its subscription
before the period's payment. `lock()` takes the row lock on the
queryset's own table only (`FOR UPDATE OF <table>`): a query that joins the talker or the package
must not lock their rows too, which is how unrelated bookings used to wait on one another.
"""

from __future__ import annotations

from django.db.models import QuerySet

ORDER = ("subscription", "payment", "booking", "earning", "dispute", "refund", "payout", "clawback")


def lock(queryset: QuerySet, *, skip_locked: bool = False, no_key: bool = False) -> QuerySet:
    """`select_for_update` on the queryset's own rows only."""
    return queryset.select_for_update(of=("self",), skip_locked=skip_locked, no_key=no_key)
