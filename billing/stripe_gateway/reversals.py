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
