"""charge.dispute.* events: every one carries the whole dispute, applied by `billing.disputes`."""

from __future__ import annotations

from billing.disputes import dispute_event_apply


def handle_dispute(event: dict) -> str:
    return dispute_event_apply(event)


HANDLERS = {
    "charge.dispute.created": handle_dispute,
    "charge.dispute.updated": handle_dispute,
    "charge.dispute.closed": handle_dispute,
    "charge.dispute.funds_withdrawn": handle_dispute,
    "charge.dispute.funds_reinstated": handle_dispute,
}
