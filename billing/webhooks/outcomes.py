"""What a webhook handler returns: it changed something, or there was nothing (more) to do."""

PROCESSED = "processed"
IGNORED = "ignored"
