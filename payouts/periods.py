"""Payout periods: ISO weeks (Monday to Sunday) and calendar months, in UTC.

A period is closed once its last day has ended; a run for a period pays every payable earning whose
hold ended before the period's cutoff (the midnight after its last day) and that no payout holds yet,
so earnings of missed or rolled-over periods are paid by the next run, once.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from payouts.models import Schedule


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    schedule: str
    start: date
    end: date  # inclusive

    @property
    def cutoff(self) -> datetime:
        """Earnings payable before this instant belong to this period or an earlier one."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def label(self) -> str:
        if self.schedule == Schedule.WEEKLY:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start:%Y-%m}"

    def is_closed(self, now: datetime) -> bool:
        return now >= self.cutoff


def period_containing(schedule: str, day: date) -> Period:
    if schedule == Schedule.WEEKLY:
        start = day - timedelta(days=day.weekday())
        return Period(schedule, start, start + timedelta(days=6))
    if schedule == Schedule.MONTHLY:
        last = calendar.monthrange(day.year, day.month)[1]
        return Period(schedule, day.replace(day=1), day.replace(day=last))
    raise PeriodError(f"Unknown schedule {schedule!r}.")


def period_last_closed(schedule: str, now: datetime) -> Period:
    """The most recent period that has fully ended at `now` (UTC)."""
    current = period_containing(schedule, now.astimezone(UTC).date())
    return period_containing(schedule, current.start - timedelta(days=1))


_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def period_parse(schedule: str, text: str) -> Period:
    """`2026-11-18` (any day inside the period), `2026-W47` (ISO week) or `2026-11` (month)."""
    text = text.strip()
    try:
        if match := _ISO_WEEK.match(text):
            day = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        elif match := _MONTH.match(text):
            day = date(int(match[1]), int(match[2]), 1)
        else:
            day = date.fromisoformat(text)
    except ValueError as error:
        raise PeriodError(f"{text!r} is not a date, an ISO week (2026-W47) or a month (2026-11).") from error
    return period_containing(schedule, day)
