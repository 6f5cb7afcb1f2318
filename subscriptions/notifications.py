"""The talker is told when a renewal fails (a declined card, or a card asking for 3-D Secure)."""

from celery import shared_task

from billing import money
from subscriptions.models import SubscriptionInvoice
from workers.notify import notification_send_once

RENEWAL_FAILED = "subscriptions.notify_renewal_failed"


@shared_task(name=RENEWAL_FAILED, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def renewal_failed_task(invoice_row_id: int) -> bool:
    row = SubscriptionInvoice.objects.select_related("subscription__talker", "subscription__listener").get(
        pk=invoice_row_id
    )
    if row.status != "open":
        return False
    sub = row.subscription
    amount = f"{money.format_amount(row.amount_due)} {row.currency.upper()}"
    body = (
        f"Hello {sub.talker.username},\n\n"
        f"We could not take {amount} for the next session of your subscription #{sub.pk} with "
        f"{sub.listener.username} (attempt {row.attempt_count}).\n"
        "If your bank asks you to confirm the payment, open the subscription in Talkpay and confirm it; "
        "otherwise update your card. We will try again, and the session is held until the last attempt.\n"
    )
    return notification_send_once(
        key=f"renewal-failed-{row.stripe_invoice_id}-{row.attempt_count}",
        to=[sub.talker.email],
        subject=f"Talkpay: payment of {amount} for your subscription failed",
        body=body,
    )
