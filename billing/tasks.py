from celery import shared_task

from billing import services, stripe_gateway
from workers.retry import backoff_seconds


@shared_task(name="billing.payment_intent_create", bind=True, acks_late=True, max_retries=8)
def payment_intent_create_task(self, payment_id: int) -> str:
    try:
        payment = services.payment_intent_create(payment_id=payment_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return payment.status


@shared_task(name="billing.payment_intents_sweep", acks_late=True)
def payment_intents_sweep_task() -> int:
    return services.payments_sweep_awaiting_intent()
