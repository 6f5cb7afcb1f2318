"""Stripe's balance transactions behind a charge and its refunds: where Stripe's processing fees are
(`fee`, `fee_details`). Plain dicts out, like the rest of the gateway."""

from __future__ import annotations

from collections.abc import Iterator

from billing.stripe_gateway import as_dict, call, client


def charge_balance_transactions(charge_id: str) -> tuple[dict | None, list[dict]]:
    """The charge's balance transaction (None until Stripe has settled the capture) and those of its
    refunds (their own, and the one that gave the money back when a refund failed). One request: the
    charge with its balance transaction and its first refunds' expanded (a charge has refunds only when
    expanded); a charge with more than a page of refunds has the rest listed."""
    charge = as_dict(
        call(
            client().v1.charges.retrieve,
            charge_id,
            params={"expand": ["balance_transaction", "refunds.data.balance_transaction"]},
        )
    )
    charge_txn = charge.get("balance_transaction")
    refund_txns: list[dict] = []
    page = charge.get("refunds") or {}
    params: dict = {"charge": charge_id, "limit": 100, "expand": ["data.balance_transaction"]}
    while True:
        for refund in page.get("data") or []:
            if isinstance(refund.get("balance_transaction"), dict):
                refund_txns.append(refund["balance_transaction"])
            failure = refund.get("failure_balance_transaction")
            if failure:
                # Rare (a refund that failed): read on its own rather than expanded for every refund.
                refund_txns.append(failure if isinstance(failure, dict) else balance_transaction_retrieve(failure))
        if not page.get("has_more") or not page.get("data"):
            break
        params = {**params, "starting_after": page["data"][-1]["id"]}
        page = as_dict(call(client().v1.refunds.list, params=params))
    return (charge_txn if isinstance(charge_txn, dict) else None), refund_txns


def balance_transactions_since(*, created_gte: int, page_size: int = 100) -> Iterator[dict]:
    """The platform's balance transactions created at or after `created_gte`, newest first."""
    params: dict = {"limit": page_size, "created": {"gte": created_gte}}
    while True:
        page = call(client().v1.balance_transactions.list, params=params)
        rows = [as_dict(txn) for txn in page.data]
        yield from rows
        if not page.has_more or not rows:
            return
        params = {**params, "starting_after": rows[-1]["id"]}


def balance_transaction_retrieve(txn_id: str) -> dict:
    return as_dict(call(client().v1.balance_transactions.retrieve, txn_id))
