"""Connect events: a listener's account (or one of its capabilities) changed, a payout's transfer was
reversed, a connected account's bank payout failed. Each is applied by the payouts owner (`billing.owners`)."""

from __future__ import annotations

from billing import owners
from billing.webhooks.outcomes import IGNORED, PROCESSED, EventFlagged


def handle_account_updated(event: dict) -> str:
    """Applied only to an account whose id we stored, and with the account as Stripe holds it now (the
    event is the trigger, not the truth). An unknown account claiming one of our listeners is flagged."""
    claimed = event["data"]["object"]
    payouts = owners.payouts()
    if not payouts.connect_account_known(account_id=claimed["id"]):
        listener_id = (claimed.get("metadata") or {}).get("listener_id")
        if listener_id:
            raise EventFlagged(f"account {claimed['id']} claims listener {listener_id} but is not one we created")
        return IGNORED
    applied = payouts.connect_account_refresh(account_id=claimed["id"], event_created=int(event.get("created") or 0))
    return PROCESSED if applied else IGNORED


def handle_capability_updated(event: dict) -> str:
    """A capability of a listener's account changed (e.g. `transfers` became active, pending or
    inactive): the account and its transfers capability are read back from Stripe by the account id of
    the event's envelope, never from the payload. Only an account we stored."""
    account_id = event.get("account") or ""
    payouts = owners.payouts()
    if not account_id or not payouts.connect_account_known(account_id=account_id):
        return IGNORED
    applied = payouts.connect_account_refresh(account_id=account_id, event_created=int(event.get("created") or 0))
    return PROCESSED if applied else IGNORED


def handle_transfer_reversed(event: dict) -> str:
    return PROCESSED if owners.payouts().payout_transfer_reversed(transfer=event["data"]["object"]) else IGNORED


def handle_payout_failed(event: dict) -> str:
    """A payout of a connected account (its Stripe balance → the listener's bank) failed."""
    account_id = event.get("account") or ""
    if not account_id:
        return IGNORED  # a payout of the platform's own balance: not a listener's
    recorded = owners.payouts().connect_account_payout_failed(account_id=account_id, payout=event["data"]["object"])
    return PROCESSED if recorded else IGNORED


HANDLERS = {
    "account.updated": handle_account_updated,
    "capability.updated": handle_capability_updated,
    "transfer.reversed": handle_transfer_reversed,
    "payout.failed": handle_payout_failed,
}
