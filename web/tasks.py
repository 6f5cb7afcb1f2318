"""Tasks of the web layer: the jobs that see every app. Registered by the worker (workers.celery
autodiscovers `web`); routed to the `maintenance` queue."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from web.ledger_check import ledger_check_run
from workers.notify import notification_send_once


@shared_task(name="web.ledger_check", acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def ledger_check_task() -> dict:
    """The daily beat job: run `ledger_check`, record its results (metrics, log line) and, when a check
    fails, tell the operators, once a day while it keeps failing (a redelivered task sends nothing more)."""
    report = ledger_check_run()
    problems = {name: len(found) for name, found in report.problems.items() if found}
    if not report.ok:
        today = timezone.now().date().isoformat()
        notification_send_once(
            key=f"ledger-check-failed-{today}",
            to=list(settings.OPERATIONS_EMAILS),
            subject=f"Talkpay: ledger check failed ({len(report.failed)} check(s)), {today}",
            body=(
                "The daily ledger check found problems: our books and Stripe's, or our books and our\n"
                "bookings and earnings, disagree. Run `python manage.py ledger_check` for the current\n"
                "report, and fix before the next payout run.\n\n" + report.text() + "\n"
            ),
        )
    return {"ok": report.ok, "problems": problems}
