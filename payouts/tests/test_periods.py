from datetime import date

import pytest

from payouts.periods import PeriodError, period_last_closed, period_parse
from payouts.tests.conftest import at


@pytest.mark.parametrize(
    ("schedule", "text", "start", "end"),
    [
        ("weekly", "2026-W45", date(2026, 11, 2), date(2026, 11, 8)),
        ("weekly", "2026-11-08", date(2026, 11, 2), date(2026, 11, 8)),
        ("weekly", "2027-01-01", date(2026, 12, 28), date(2027, 1, 3)),
        ("monthly", "2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("monthly", "2028-02-15", date(2028, 2, 1), date(2028, 2, 29)),
    ],
)
def test_periods_are_iso_weeks_and_calendar_months(schedule, text, start, end):
    period = period_parse(schedule, text)
    assert (period.start, period.end) == (start, end)


def test_the_last_closed_period_is_the_one_before_now():
    assert period_last_closed("weekly", at("2026-11-09 00:00")).start == date(2026, 11, 2)
    assert period_last_closed("weekly", at("2026-11-08 23:59")).start == date(2026, 10, 26)
    assert period_last_closed("monthly", at("2026-01-01 06:00")).start == date(2025, 12, 1)


def test_nonsense_is_refused_naming_the_formats():
    with pytest.raises(PeriodError, match="ISO week"):
        period_parse("weekly", "last tuesday")
