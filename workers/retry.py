"""The retry policy for tasks that call Stripe: transient errors back off with jitter, others fail."""

import random

# Seconds before retry n (0-based): exponential, capped, with full jitter so a burst of failures
# after an outage does not come back as a synchronized burst.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0


def backoff_seconds(retries: int) -> float:
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2**retries))
    return random.uniform(ceiling / 2, ceiling)
