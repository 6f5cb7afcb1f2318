"""The beat schedule, as rows of django-celery-beat (editable in the admin).

`manage.py setup_schedules` writes these; `make run` and deploys call it. Every job is safe to run
twice, so a second beat or a manual run does no harm. Times are UTC.
"""

from dataclasses import dataclass

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class Every:
    seconds: int


@dataclass(frozen=True)
class Cron:
    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


# name → (task, when, kwargs). Adding a job here and running setup_schedules is all it takes.
SCHEDULES: dict[str, tuple[str, Every | Cron, dict]] = {
    "Sweep payments waiting for a PaymentIntent": ("billing.payment_intents_sweep", Every(seconds=30), {}),
    "Cancel bookings left unpaid": ("booking.bookings_expire_unpaid", Every(seconds=300), {}),
    "Reconcile stuck payments with Stripe and re-enqueue stuck webhook events": (
        "billing.payment_reconcile",
        Every(seconds=300),
        {},
    ),
    # Payout runs pay the last closed period; earnings of a missed period are in the next run's payout.
    "Pay listeners weekly (last ISO week)": (
        "payouts.run_due",
        Cron(minute="0", hour="6", day_of_week="1"),
        {"schedule": "weekly"},
    ),
    "Pay listeners monthly (last month)": (
        "payouts.run_due",
        Cron(minute="0", hour="7", day_of_month="1"),
        {"schedule": "monthly"},
    ),
    "Sweep payouts stuck between our database and Stripe": ("payouts.sweep_stuck", Every(seconds=60), {}),
    # Events whose message was lost (broker down at intake, a worker killed holding it): within 1-2 min.
    "Re-enqueue webhook events whose message was lost": ("billing.webhook_events_sweep", Every(seconds=60), {}),
    "Send refunds whose task was lost": ("billing.refunds_sweep", Every(seconds=60), {}),
    "Book Stripe fees not booked yet": ("billing.payment_fees_sweep", Every(seconds=600), {}),
    "Cancel PaymentIntents whose cancel task was lost": ("billing.payment_intent_cancels_sweep", Every(seconds=60), {}),
    "Reverse transfers for clawbacks whose task was lost": ("billing.clawbacks_sweep", Every(seconds=60), {}),
    "Create subscriptions and sync plans whose task was lost": ("subscriptions.sweep", Every(seconds=60), {}),
    # Daily, before Monday's payout run: a failing check mails OPERATIONS_EMAILS before money leaves.
    "Check the books against Stripe (ledger_check)": ("web.ledger_check", Cron(minute="30", hour="5"), {}),
}


def _schedule_fields(when: Every | Cron) -> dict:
    if isinstance(when, Every):
        interval, _ = IntervalSchedule.objects.get_or_create(every=when.seconds, period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None}
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=when.minute,
        hour=when.hour,
        day_of_week=when.day_of_week,
        day_of_month=when.day_of_month,
        month_of_year=when.month_of_year,
        timezone="UTC",
    )
    return {"crontab": crontab, "interval": None}


@transaction.atomic
def schedules_write() -> list[str]:
    """Create or update every job; operators' edits to enabled/disabled are kept."""
    import json

    written = []
    for name, (task, when, kwargs) in SCHEDULES.items():
        fields = _schedule_fields(when)
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "kwargs": json.dumps(kwargs), **fields}
        )
        written.append(name)
    return written
