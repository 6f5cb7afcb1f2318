"""Connect accounts: the listener's Express account, onboarding links, and what Stripe says of the account."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.stripe_gateway import PermanentStripeError, TransientStripeError
from billing.stripe_gateway import connect as gateway
from payouts.models import CapabilityStatus, StripeListenerAccount
from web.models import User
from workers.notify import notification_enqueue

logger = logging.getLogger(__name__)

TRANSFERS = "transfers"


def connect_account_get_or_create(*, listener: User) -> StripeListenerAccount:
    """The listener's Express account, created on Stripe once. The idempotency key is the listener's,
    so racing requests get the same account, and after a crash before our save the next call gets the
    same account back from Stripe and saves it (`account.updated` never adopts an unknown account)."""
    existing = StripeListenerAccount.objects.filter(listener=listener).first()
    if existing is not None:
        return existing
    account = gateway.account_create(listener_id=listener.pk, email=listener.email)
    try:
        with transaction.atomic():
            return StripeListenerAccount.objects.create(
                listener=listener, stripe_account_id=account["id"], **_account_fields(account)
            )
    except IntegrityError:
        return StripeListenerAccount.objects.get(listener=listener)


def connect_onboarding_link_create(*, listener: User) -> dict:
    """A fresh, single-use Account Link for the listener's onboarding (creating the account first)."""
    account = connect_account_get_or_create(listener=listener)
    link = gateway.account_link_create(
        account_id=account.stripe_account_id,
        refresh_url=settings.CONNECT_REFRESH_URL,
        return_url=settings.CONNECT_RETURN_URL,
    )
    return {"account": account, "url": link["url"], "expires_at": link.get("expires_at")}


def connect_dashboard_url(*, account: StripeListenerAccount) -> str | None:
    """A fresh Express dashboard link for an onboarded listener, or None: before onboarding (Stripe has
    no dashboard to show yet), or when Stripe cannot be reached (the status page still answers). The
    link is single-use and expires within minutes, so it is made when the status is read, never stored."""
    if not account.details_submitted:
        return None
    try:
        return gateway.login_link_create(account_id=account.stripe_account_id)["url"]
    except (TransientStripeError, PermanentStripeError) as error:
        logger.warning("no Express dashboard link for %s: %s", account.stripe_account_id, error)
        return None


def _account_fields(account: dict) -> dict:
    requirements = account.get("requirements") or {}
    return {
        "charges_enabled": bool(account.get("charges_enabled")),
        "payouts_enabled": bool(account.get("payouts_enabled")),
        "details_submitted": bool(account.get("details_submitted")),
        "requirements": {
            key: requirements.get(key) or []
            for key in ("currently_due", "eventually_due", "past_due", "pending_verification", "errors")
        },
        "disabled_reason": requirements.get("disabled_reason") or "",
        "transfers_capability": _transfers_status(account),
    }


def _transfers_status(account: dict) -> str:
    """`account.capabilities.transfers` (active, pending, inactive); absent when it is not requested."""
    return str((account.get("capabilities") or {}).get(TRANSFERS) or CapabilityStatus.UNREQUESTED)


def connect_account_known(*, account_id: str) -> bool:
    """Whether this Stripe account is one we created and stored for a listener."""
    return StripeListenerAccount.objects.filter(stripe_account_id=account_id).exists()


@transaction.atomic
def connect_account_refresh(*, account_id: str, event_created: int | None = None) -> bool:
    """Read one of our listeners' accounts from Stripe and apply it: what `account.updated` and
    `capability.updated` trigger (the event is not the truth), and what a transfer Stripe refused for
    want of the transfers capability triggers (`event_created` None: no event to order by).

    Stripe is read while the row is locked, so of two concurrent refreshes the one that writes last
    also read last: a slow reader can never put back an older state over a newer one. An event older
    than the last one applied changes nothing (Stripe does not keep order; its own read would be as
    fresh, so skipping it saves a call). While the transfers capability is not active, the capability
    is read too, for its own reason (`pending.review`, `requirements.fields_needed`...).
    Returns whether anything was applied; an unknown account is never applied."""
    row = StripeListenerAccount.objects.select_for_update().filter(stripe_account_id=account_id).first()
    if row is None or (event_created is not None and event_created < row.last_event_created):
        return False
    account = gateway.account_retrieve(account_id)
    capability = None
    if _transfers_status(account) not in (CapabilityStatus.ACTIVE, CapabilityStatus.UNREQUESTED):
        capability = gateway.account_capability_retrieve(account_id, TRANSFERS)
    _account_apply(row, account=account, transfers_capability=capability, event_created=event_created)
    return True


@transaction.atomic
def connect_account_sync(*, account: dict, event_created: int | None, transfers_capability: dict | None = None) -> bool:
    """Apply Stripe's view of a connected account, read from Stripe by the caller (`connect_account_refresh`
    reads it itself, under the lock: prefer it). Events older than the last one applied change nothing.
    Returns whether anything was applied."""
    row = StripeListenerAccount.objects.select_for_update().filter(stripe_account_id=account["id"]).first()
    if row is None:
        # Only accounts whose id we stored: metadata naming a listener proves nothing (anyone with
        # access to the platform can set it), so an unknown account never becomes a payout destination.
        return False
    if event_created is not None and event_created < row.last_event_created:
        return False
    _account_apply(row, account=account, transfers_capability=transfers_capability, event_created=event_created)
    return True


def _account_apply(
    row: StripeListenerAccount, *, account: dict, transfers_capability: dict | None, event_created: int | None
) -> None:
    could_receive = row.can_receive_payouts
    for name, value in _account_fields(account).items():
        setattr(row, name, value)
    if row.transfers_active:
        row.transfers_capability_reason = ""
    elif transfers_capability is not None:
        requirements = transfers_capability.get("requirements") or {}
        row.transfers_capability_reason = requirements.get("disabled_reason") or ""
    if event_created is not None:
        row.last_event_created = max(row.last_event_created, event_created)
    row.save()
    if could_receive and not row.can_receive_payouts:
        notification_enqueue("payouts.notify_account_restricted", row.pk)
    if could_receive != row.can_receive_payouts:
        logger.info(
            "connect account %s %s transfers (payouts_enabled=%s, transfers capability %s%s)",
            row.stripe_account_id,
            "can receive" if row.can_receive_payouts else "can no longer receive",
            row.payouts_enabled,
            row.transfers_capability,
            f", {row.transfers_capability_reason}" if row.transfers_capability_reason else "",
        )


def connect_account_payout_failed(*, account_id: str, payout: dict) -> bool:
    """The connected account's bank payout failed: the money is back on the listener's Stripe balance,
    our transfer stands. Recorded so the listener and ops see it."""
    updated = StripeListenerAccount.objects.filter(stripe_account_id=account_id).update(
        payout_failure_code=payout.get("failure_code") or "",
        payout_failure_message=payout.get("failure_message") or "",
        payout_failed_at=timezone.now(),
    )
    return bool(updated)
