"""Transfer reversals: taking a listener's share back from their Connect account (a clawback)."""

from __future__ import annotations

from billing.stripe_gateway import as_dict, call, client, options


def transfer_reversal_create(*, clawback_id: int, transfer_id: str, amount: int, listener_id: int) -> dict:
    """Reverse `amount` cents of a transfer. The key is the clawback row's, so a retry never reverses
    twice. Stripe refuses with `balance_insufficient` when the connected account cannot cover it."""
    reversal = call(
        client().v1.transfers.reversals.create,
        transfer_id,
        params={
            "amount": amount,
            "metadata": {"clawback_id": str(clawback_id), "listener_id": str(listener_id)},
        },
        options=options(f"reversal-clawback-{clawback_id}"),
    )
    return as_dict(reversal)


def transfer_reversal_find(*, transfer_id: str, clawback_id: int) -> dict | None:
    """The reversal already made for this clawback, found by its metadata: a retry after a crash
    between Stripe's answer and our save uses it instead of asking again, even after Stripe's
    24-hour idempotency window."""
    page = call(client().v1.transfers.reversals.list, transfer_id, params={"limit": 100})
    for reversal in (as_dict(item) for item in page.data):
        if (reversal.get("metadata") or {}).get("clawback_id") == str(clawback_id):
            return reversal
    return None


def transfer_retrieve(transfer_id: str) -> dict:
    return as_dict(call(client().v1.transfers.retrieve, transfer_id))
