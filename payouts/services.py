"""Writes of the payouts app: listener earnings, Connect accounts, payout runs and transfers."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from payouts.models import ListenerPayout


def earning_session_completed(*, booking_id: int, completed_at: datetime) -> int:
    """The session happened: the earning becomes payable once the configured hold has passed."""
    return ListenerPayout.objects.filter(booking_id=booking_id, status=ListenerPayout.Status.PENDING).update(
        payable_at=completed_at + timedelta(hours=settings.PAYOUT_HOLD_HOURS)
    )
