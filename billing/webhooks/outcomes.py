"""What a webhook handler returns: it changed something, or there was nothing (more) to do; or what it
raises when the event must not be applied at all (EventFlagged)."""

PROCESSED = "processed"
IGNORED = "ignored"


class EventFlagged(Exception):
    """Raised by a handler when the event disagrees with our records or with Stripe. Everything the
    handler wrote is rolled back, the event is stored as `flagged` with the reason, and never retried."""
