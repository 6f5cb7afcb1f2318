"""The one dispatch table: event type → handler, merged from each area's `HANDLERS`."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

Handler = Callable[[dict], str]

# Areas whose tables are always there, then optional ones other areas may add later.
_REQUIRED = ("billing.webhooks.payments", "billing.webhooks.refunds")
_OPTIONAL = ("billing.webhooks.disputes", "billing.disputes", "payouts.webhook_handlers")


def _table(module_name: str, *, optional: bool) -> dict[str, Handler]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        # Only a missing optional module is tolerated, not a broken import inside one that exists.
        if optional and error.name == module_name:
            return {}
        raise
    return dict(getattr(module, "HANDLERS", {}))


@functools.cache
def webhook_handlers() -> dict[str, Handler]:
    merged: dict[str, Handler] = {}
    for module_name, optional in [(name, False) for name in _REQUIRED] + [(name, True) for name in _OPTIONAL]:
        for event_type, handler in _table(module_name, optional=optional).items():
            if event_type in merged:
                raise RuntimeError(f"two webhook handlers for {event_type!r} (second in {module_name})")
            merged[event_type] = handler
    return merged


def webhook_handler_for(event_type: str) -> Handler | None:
    return webhook_handlers().get(event_type)
