from celery import shared_task
from django.utils import timezone

from payouts import services
from payouts.periods import period_last_closed, period_parse


@shared_task(name="payouts.run_due", acks_late=True)
def payout_run_due_task(schedule: str, period: str | None = None) -> dict:
    """The beat job: pay the last closed period of `schedule` (earlier missed periods included)."""
    target = period_parse(schedule, period) if period else period_last_closed(schedule, timezone.now())
    summary = services.payout_run(period=target)
    return {"period": target.label, "paid": summary.paid, "failed": summary.failed, "in_flight": summary.in_flight}


@shared_task(name="payouts.payout_execute", acks_late=True)
def payout_execute_task(payout_id: int) -> str | None:
    payout = services.payout_execute(payout_id=payout_id)
    return payout.status if payout else None


@shared_task(name="payouts.sweep_stuck", acks_late=True)
def payouts_sweep_stuck_task() -> int:
    return services.payouts_sweep_stuck()
