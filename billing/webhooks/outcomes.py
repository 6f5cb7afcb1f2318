"""What a webhook handler returns: it changed something, or there was nothing (more) to do; or what it
raises when the event must not be applied at all (EventFlagged)."""

from __future__ import annotations

from collections.abc import Callable

PROCESSED = "processed"
IGNORED = "ignored"


class EventFlagged(Exception):
    """Raised by a handler when the event disagrees with our records or with Stripe. Everything the
    handler wrote is rolled back, the event is stored as `flagged` with the reason, and never retried.

    `on_flag`, when given, runs in the transaction that records the flag (after the handler's work was
    rolled back), to mark what the operator must look at, e.g. the payment's `review_reason`."""

    def __init__(self, reason: str, *, on_flag: Callable[[], object] | None = None):
        super().__init__(reason)
        self.on_flag = on_flag
