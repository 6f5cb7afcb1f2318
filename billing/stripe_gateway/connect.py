"""Stripe Connect: listeners' Express accounts, onboarding links, transfers and their reversals.

Every function takes our own ids and plain values and returns plain dicts. Calls that create
something carry an idempotency key derived from our row id.
"""

from __future__ import annotations

from collections.abc import Iterator

from billing.stripe_gateway import as_dict, call, client, options


def transfer_group_for(payout_id: int) -> str:
    return f"payout-{payout_id}"


# --- Accounts ----------------------------------------------------------------------------------------


def account_create(*, listener_id: int, email: str, country: str = "US") -> dict:
    """The listener's Express account. The key is the listener's, so racing requests get one account."""
    account = call(
        client().v1.accounts.create,
        params={
            "type": "express",
            "country": country,
            "email": email,
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"listener_id": str(listener_id)},
        },
        options=options(f"connect-account-listener-{listener_id}"),
    )
    return as_dict(account)


def account_retrieve(account_id: str) -> dict:
    return as_dict(call(client().v1.accounts.retrieve, account_id))


def account_capability_retrieve(account_id: str, capability: str) -> dict:
    """One capability of a connected account (`transfers`), with its requirements and disabled_reason."""
    return as_dict(call(client().v1.accounts.capabilities.retrieve, account_id, capability))


def account_link_create(*, account_id: str, refresh_url: str, return_url: str) -> dict:
    """A single-use, short-lived onboarding URL. Not idempotent on purpose: each call is a fresh link."""
    link = call(
        client().v1.account_links.create,
        params={
            "account": account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "type": "account_onboarding",
        },
    )
    return as_dict(link)


def login_link_create(*, account_id: str) -> dict:
    """A single-use, short-lived link into the listener's Express dashboard (balance, bank payouts,
    details). Stripe refuses it until onboarding is complete. Not idempotent: each call is a new link."""
    return as_dict(call(client().v1.accounts.login_links.create, account_id))


# --- Transfers ---------------------------------------------------------------------------------------


def transfer_create(
    *, payout_id: int, amount: int, currency: str, destination: str, listener_id: int, idempotency_key: str
) -> dict:
    transfer = call(
        client().v1.transfers.create,
        params={
            "amount": amount,
            "currency": currency,
            "destination": destination,
            "transfer_group": transfer_group_for(payout_id),
            "description": f"Talkpay payout #{payout_id}",
            "metadata": {"payout_id": str(payout_id), "listener_id": str(listener_id)},
        },
        options=options(idempotency_key),
    )
    return as_dict(transfer)


def platform_balance_available() -> dict[str, int]:
    """What the platform can transfer now, per currency: Stripe's available balance (a charge's funds
    are pending until the account's delay has passed, and a transfer beyond what is available is
    refused with `balance_insufficient`)."""
    balance = as_dict(call(client().v1.balance.retrieve))
    return {row["currency"]: int(row["amount"]) for row in balance.get("available") or []}


def transfer_find_for_payout(*, payout_id: int) -> dict | None:
    """The transfer already made for this payout, if any: found by its transfer_group, so it works
    long after Stripe's 24-hour idempotency window. Checked against the metadata too."""
    page = call(client().v1.transfers.list, params={"transfer_group": transfer_group_for(payout_id), "limit": 10})
    for transfer in page.data:
        found = as_dict(transfer)
        if found.get("transfer_group") == transfer_group_for(payout_id) or (found.get("metadata") or {}).get(
            "payout_id"
        ) == str(payout_id):
            return found
    return None


def transfers_list_all(*, page_size: int = 100, created_gte: int | None = None) -> Iterator[dict]:
    """Every transfer of the platform (created at or after `created_gte`), newest first, page by page."""
    starting_after: str | None = None
    while True:
        params: dict = {"limit": page_size}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if starting_after:
            params["starting_after"] = starting_after
        page = call(client().v1.transfers.list, params=params)
        rows = [as_dict(transfer) for transfer in page.data]
        yield from rows
        if not page.has_more or not rows:
            return
        starting_after = rows[-1]["id"]


def transfer_reversal_create(*, transfer_id: str, amount: int, idempotency_key: str) -> dict:
    reversal = call(
        client().v1.transfers.reversals.create,
        transfer_id,
        params={"amount": amount},
        options=options(idempotency_key),
    )
    return as_dict(reversal)


def transfer_reversed_events_since(*, created_gte: int, page_size: int = 100) -> Iterator[dict]:
    """`transfer.reversed` events created at or after `created_gte`: which older transfers changed."""
    starting_after: str | None = None
    while True:
        params: dict = {"limit": page_size, "type": "transfer.reversed", "created": {"gte": created_gte}}
        if starting_after:
            params["starting_after"] = starting_after
        page = call(client().v1.events.list, params=params)
        rows = [as_dict(event) for event in page.data]
        yield from rows
        if not page.has_more or not rows:
            return
        starting_after = rows[-1]["id"]


def transfer_retrieve(transfer_id: str) -> dict:
    return as_dict(call(client().v1.transfers.retrieve, transfer_id))
