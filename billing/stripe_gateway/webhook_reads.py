"""Reads the webhook handlers make when an event's payload is not enough to decide: the current
charge behind a refund, and every refund of a charge. Plain dicts out, like the rest of the gateway."""

from __future__ import annotations

from billing.stripe_gateway import as_dict, call, client


def charge_retrieve(charge_id: str) -> dict:
    return as_dict(call(client().v1.charges.retrieve, charge_id))


def refunds_list_for_charge(charge_id: str) -> list[dict]:
    """All refunds of a charge, oldest first (Stripe lists newest first, 100 a page)."""
    refunds: list[dict] = []
    params: dict = {"charge": charge_id, "limit": 100}
    while True:
        page = as_dict(call(client().v1.refunds.list, params=params))
        refunds.extend(page.get("data") or [])
        if not page.get("has_more") or not page.get("data"):
            break
        params = {**params, "starting_after": page["data"][-1]["id"]}
    return sorted(refunds, key=lambda refund: (refund.get("created") or 0, refund["id"]))
