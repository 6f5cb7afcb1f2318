"""Celery tasks of subscriptions: stable names, ids as arguments, each calls one service."""

from celery import shared_task

from billing import stripe_gateway
from subscriptions import services
from workers.retry import backoff_seconds


@shared_task(name="subscriptions.subscription_create_on_stripe", bind=True, acks_late=True, max_retries=8)
def subscription_create_on_stripe_task(self, subscription_id: int) -> str:
    try:
        sub = services.subscription_create_on_stripe(subscription_id=subscription_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return sub.status


@shared_task(name="subscriptions.plan_sync", bind=True, acks_late=True, max_retries=8)
def plan_sync_task(self, plan_id: int) -> str:
    try:
        plan = services.plan_sync(plan_id=plan_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return plan.stripe_price_id


@shared_task(name="subscriptions.sweep", acks_late=True)
def subscriptions_sweep_task() -> int:
    return (
        services.subscriptions_sweep_creating()
        + services.plans_sweep_unsynced()
        + services.subscriptions_expire_unpaid()
    )


from subscriptions import notifications  # noqa: E402, F401  (registers the notification task)
