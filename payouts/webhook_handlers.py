"""Stripe events of the payouts app, dispatched by billing's webhook worker through `HANDLERS`.

Each handler takes the verified event as a dict, runs inside the dispatcher's transaction and returns
"processed" or "ignored". Stripe repeats and reorders events, so every handler is idempotent and moves
rows only forward.
"""

from __future__ import annotations

from collections.abc import Callable

from payouts import services


def handle_account_updated(event: dict) -> str:
    account = event["data"]["object"]
    applied = services.connect_account_sync(account=account, event_created=int(event.get("created") or 0))
    return "processed" if applied else "ignored"


def handle_transfer_reversed(event: dict) -> str:
    return "processed" if services.payout_transfer_reversed(transfer=event["data"]["object"]) else "ignored"


def handle_payout_failed(event: dict) -> str:
    """A payout of a connected account (its Stripe balance → the listener's bank) failed."""
    account_id = event.get("account") or ""
    if not account_id:
        return "ignored"  # a payout of the platform's own balance: not a listener's
    recorded = services.connect_account_payout_failed(account_id=account_id, payout=event["data"]["object"])
    return "processed" if recorded else "ignored"


HANDLERS: dict[str, Callable[[dict], str]] = {
    "account.updated": handle_account_updated,
    "transfer.reversed": handle_transfer_reversed,
    "payout.failed": handle_payout_failed,
}
