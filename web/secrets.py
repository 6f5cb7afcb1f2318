"""What a production secret must look like. Imported by the settings (so nothing here imports Django)."""

from __future__ import annotations

import re

_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    # Django's own deploy check asks for 50 characters with at least 5 distinct ones.
    "DJANGO_SECRET_KEY": (re.compile(r"^.{50,}$", re.DOTALL), "at least 50 random characters"),
    # HS256 wants a key of at least 256 bits.
    "JWT_SIGNING_KEY": (re.compile(r"^.{32,}$", re.DOTALL), "at least 32 random characters"),
    "STRIPE_SECRET_KEY": (re.compile(r"^(sk|rk)_(test|live)_[0-9A-Za-z]{16,}$"), "a Stripe key sk_live_… or rk_live_…"),
    "STRIPE_PUBLISHABLE_KEY": (re.compile(r"^pk_(test|live)_[0-9A-Za-z]{16,}$"), "a Stripe key pk_live_…"),
    "STRIPE_WEBHOOK_SECRET": (re.compile(r"^whsec_[0-9A-Za-z]{16,}$"), "the endpoint's signing secret whsec_…"),
    "STRIPE_CONNECT_WEBHOOK_SECRET": (
        re.compile(r"^whsec_[0-9A-Za-z]{16,}$"),
        "the Connect endpoint's signing secret whsec_…",
    ),
}


def insecure_settings(values: dict[str, str], *, committed: frozenset[str]) -> list[str]:
    """One message per secret that is missing, committed to the repository, or not shaped like the real thing."""
    problems = []
    for name, value in values.items():
        pattern, expected = _SHAPES[name]
        if not value:
            problems.append(f"{name} is not set ({expected})")
        elif value in committed or value.startswith("dev-insecure"):
            problems.append(f"{name} is a value committed to the repository")
        elif not pattern.match(value) or len(set(value)) < 5:
            problems.append(f"{name} does not look like {expected}")
    return problems


def throwaway_production_env() -> dict[str, str]:
    """Environment for a production-settings run on this machine (tests, `make fuzz`, benchmarks): fresh
    random secrets that pass the checks above, and plain HTTP (no TLS proxy in front)."""
    import secrets

    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(32),
        "STRIPE_SECRET_KEY": "sk_test_" + secrets.token_hex(16),
        "STRIPE_PUBLISHABLE_KEY": "pk_test_" + secrets.token_hex(16),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "DJANGO_SECURE_SSL_REDIRECT": "false",
    }
