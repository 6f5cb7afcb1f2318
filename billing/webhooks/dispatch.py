"""The one dispatch table: event type → handler, from each area's `HANDLERS`, imported by name so a
missing module is an import error at start-up, never an event type silently "ignored"."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from billing.webhooks import connect, disputes, fees, payments, refunds, subscriptions

Handler = Callable[[dict], str]


def _merge(*tables: Mapping[str, Handler]) -> dict[str, Handler]:
    merged: dict[str, Handler] = {}
    for table in tables:
        for event_type, handler in table.items():
            if event_type in merged:
                raise RuntimeError(f"two webhook handlers for {event_type!r}")
            merged[event_type] = handler
    return merged


HANDLERS: dict[str, Handler] = _merge(
    payments.HANDLERS,
    refunds.HANDLERS,
    disputes.HANDLERS,
    connect.HANDLERS,
    subscriptions.HANDLERS,
    fees.HANDLERS,
)


def webhook_handlers() -> dict[str, Handler]:
    return HANDLERS


def webhook_handler_for(event_type: str) -> Handler | None:
    return HANDLERS.get(event_type)
