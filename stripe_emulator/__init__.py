"""A stateful, standard-library-only Stripe API emulator with signed webhooks.

Run it with ``python -m stripe_emulator --port 12111``; see README.md.
"""

__version__ = "0.1.0"

from .core import API_VERSION  # noqa: F401
