"""Billing's notifications: the talker's receipt and refund confirmation, disputes to operators.

The services enqueue them (`workers.notify.notification_enqueue`) when the fact is committed; each
task renders from the row, so a message always says what the database holds.
"""

from django.conf import settings

from billing import money
from billing.models import Dispute, Payment, Refund
from workers.notify import notification_send_once, notification_task

RECEIPT = "billing.notify_payment_receipt"
REFUND_CONFIRMATION = "billing.notify_refund_confirmation"
DISPUTE_OPENED = "billing.notify_dispute_opened"


@notification_task(RECEIPT)
def payment_receipt_task(payment_id: int) -> bool:
    payment = Payment.objects.select_related("booking__package", "booking__listener", "talker").get(pk=payment_id)
    if payment.status != Payment.Status.SUCCEEDED:
        return False
    booking = payment.booking
    body = (
        f"Hello {payment.talker.username},\n\n"
        f"We received your payment of {money.display(payment.amount, payment.currency)} for booking #{booking.pk}:\n"
        f"  {booking.package.name} with {booking.listener.username} on {booking.scheduled_at:%Y-%m-%d %H:%M} UTC.\n"
        f"  Payment reference: {payment.stripe_payment_intent_id}\n\n"
        "Thank you for using Talkpay."
    )
    return notification_send_once(
        key=f"receipt-payment-{payment.pk}",
        to=[payment.talker.email],
        subject=f"Talkpay receipt: {money.display(payment.amount, payment.currency)} for booking #{booking.pk}",
        body=body,
    )


@notification_task(REFUND_CONFIRMATION)
def refund_confirmation_task(refund_id: int) -> bool:
    refund = Refund.objects.select_related("payment__talker", "payment__booking").get(pk=refund_id)
    if refund.status != Refund.Status.SUCCEEDED:
        return False
    payment = refund.payment
    body = (
        f"Hello {payment.talker.username},\n\n"
        f"{money.display(refund.amount, refund.currency)} of your payment for booking #{payment.booking_id} has been "
        "refunded to your card. It usually appears on your statement within 5 to 10 business days.\n"
        f"  Refund reference: {refund.stripe_refund_id}\n"
    )
    return notification_send_once(
        key=f"refund-{refund.pk}",
        to=[payment.talker.email],
        subject=f"Talkpay refund: {money.display(refund.amount, refund.currency)} for booking #{payment.booking_id}",
        body=body,
    )


@notification_task(DISPUTE_OPENED)
def dispute_opened_task(dispute_id: int) -> bool:
    dispute = Dispute.objects.select_related("payment").get(pk=dispute_id)
    due = f"{dispute.evidence_due_by:%Y-%m-%d %H:%M} UTC" if dispute.evidence_due_by else "unknown"
    body = (
        f"A card payment is disputed: {dispute.stripe_dispute_id}, {money.display(dispute.amount, dispute.currency)},\n"
        f"reason {dispute.reason or 'not given'}, booking #{dispute.payment.booking_id}, "
        f"payment #{dispute.payment_id} ({dispute.payment.stripe_payment_intent_id}).\n"
        f"Evidence is due by {due}; submit it on Stripe. The listener's earning is held meanwhile.\n"
    )
    return notification_send_once(
        key=f"dispute-opened-{dispute.pk}",
        to=list(settings.OPERATIONS_EMAILS),
        subject=f"Talkpay dispute opened: {money.display(dispute.amount, dispute.currency)} on booking "
        f"#{dispute.payment.booking_id}",
        body=body,
    )
