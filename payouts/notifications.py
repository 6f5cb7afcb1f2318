"""Payouts' notifications to the listener: a payout sent, a payout failed, an account restricted.

Enqueued by the services when the fact is committed (`workers.notify.notification_enqueue`)."""

from billing import money
from payouts.models import Payout, StripeListenerAccount
from workers.notify import notification_send_once, notification_task

PAYOUT_SENT = "payouts.notify_payout_sent"
PAYOUTS_SENT = "payouts.notify_payouts_sent"
PAYOUT_FAILED = "payouts.notify_payout_failed"
ACCOUNT_RESTRICTED = "payouts.notify_account_restricted"


@notification_task(PAYOUT_SENT)
def payout_sent_task(payout_id: int) -> bool:
    return _payout_sent(Payout.objects.select_related("listener").get(pk=payout_id))


@notification_task(PAYOUTS_SENT)
def payouts_sent_task(payout_ids: list[int]) -> int:
    """A batch's "payout sent" mails (what a payout run enqueues: one message per recorded batch).
    Each is sent once (its own marker), so a retry after a failure part-way sends only the rest.
    Returns how many were sent now."""
    payouts = Payout.objects.select_related("listener").filter(pk__in=payout_ids).order_by("pk")
    return sum(_payout_sent(payout) for payout in payouts)


def _payout_sent(payout: Payout) -> bool:
    if payout.status != Payout.Status.PAID or not payout.stripe_transfer_id:
        return False
    amount = money.display(payout.amount, payout.currency)
    body = (
        f"Hello {payout.listener.username},\n\n"
        f"Your earnings for {payout.period_start} to {payout.period_end}, {amount},\n"
        "have been sent to your Stripe account; Stripe pays them out to your bank on your account's schedule.\n"
        f"  Transfer reference: {payout.stripe_transfer_id}\n"
    )
    return notification_send_once(
        key=f"payout-sent-{payout.pk}",
        to=[payout.listener.email],
        subject=f"Talkpay payout sent: {amount}",
        body=body,
    )


@notification_task(PAYOUT_FAILED)
def payout_failed_task(payout_id: int) -> bool:
    payout = Payout.objects.select_related("listener").get(pk=payout_id)
    if payout.status != Payout.Status.FAILED:
        return False
    amount = money.display(payout.amount, payout.currency)
    body = (
        f"Hello {payout.listener.username},\n\n"
        f"We could not send your payout of {amount} for {payout.period_start} to "
        f"{payout.period_end}.\nYour earnings are safe and will be in a later payout. "
        "If your Stripe account asks for information, completing it lets payouts resume.\n"
    )
    return notification_send_once(
        key=f"payout-failed-{payout.pk}-{payout.attempts}",
        to=[payout.listener.email],
        subject="Talkpay payout delayed",
        body=body,
    )


@notification_task(ACCOUNT_RESTRICTED)
def account_restricted_task(account_row_id: int) -> bool:
    account = StripeListenerAccount.objects.select_related("listener").get(pk=account_row_id)
    if account.can_receive_payouts:
        return False
    if account.payouts_enabled:
        # Payouts to the bank still work, but Stripe refuses transfers into the account for now.
        reason = account.transfers_capability_reason or f"transfers {account.get_transfers_capability_display()}"
        what = "receiving transfers of your earnings"
    else:
        reason = account.disabled_reason or "Stripe needs more information"
        what = "payouts to your account"
    body = (
        f"Hello {account.listener.username},\n\n"
        f"Stripe has paused {what} ({reason}). Your earnings are kept until it is resolved:\n"
        "start onboarding again from Talkpay to see and provide what Stripe asks for.\n"
    )
    return notification_send_once(
        key=f"account-restricted-{account.pk}-{account.last_event_created}",
        to=[account.listener.email],
        subject="Talkpay: action needed to keep receiving payouts",
        body=body,
    )
