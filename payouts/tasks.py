from celery import shared_task
from django.utils import timezone

from billing import stripe_gateway
from payouts import services
from payouts.periods import period_last_closed, period_parse
from workers.retry import backoff_seconds


@shared_task(name="payouts.run_due", acks_late=True)
def payout_run_due_task(schedule: str, period: str | None = None) -> dict:
    """The beat job: pay the last closed period of `schedule` (earlier missed periods included)."""
    target = period_parse(schedule, period) if period else period_last_closed(schedule, timezone.now())
    summary = services.payout_run(period=target)
    return {
        "period": target.label,
        "paid": summary.paid,
        "failed": summary.failed,
        "deferred": summary.deferred,
        "in_flight": summary.in_flight,
        "held": summary.held,
    }


@shared_task(name="payouts.payout_execute", acks_late=True)
def payout_execute_task(payout_id: int) -> str | None:
    payout = services.payout_execute(payout_id=payout_id)
    return payout.status if payout else None


@shared_task(name="payouts.sweep_stuck", acks_late=True)
def payouts_sweep_stuck_task() -> int:
    return services.payouts_sweep_stuck()


# Clawbacks moved here from billing; their task names stay as they were, so messages already queued
# and the beat rows already written keep working.
@shared_task(name="billing.clawback_execute", bind=True, acks_late=True, max_retries=8)
def clawback_execute_task(self, clawback_id: int) -> str:
    try:
        clawback = services.clawback_execute(clawback_id=clawback_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return clawback.status


@shared_task(name="billing.clawbacks_sweep", acks_late=True)
def clawbacks_sweep_task() -> int:
    return services.clawbacks_sweep_pending()


# The notify_* tasks live beside what they tell about; imported here so the worker registers them.
from payouts import notifications  # noqa: E402, F401
