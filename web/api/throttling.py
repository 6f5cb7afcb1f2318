"""Throttles keyed on the trusted client address (web.api.client_ip) and counted in the shared Redis cache."""

from django.core.cache import caches
from rest_framework import throttling

from web.api.client_ip import client_ip


class _SharedCounting:
    def __init__(self) -> None:
        self.cache = caches["throttle"]
        super().__init__()

    def get_ident(self, request) -> str:
        return client_ip(request)


class UserThrottle(_SharedCounting, throttling.UserRateThrottle):
    pass


class AnonThrottle(_SharedCounting, throttling.AnonRateThrottle):
    pass


class AuthThrottle(_SharedCounting, throttling.SimpleRateThrottle):
    """Sign-in, refresh and registration, per client address whoever is signed in (django-axes adds the
    per-username lockout on top)."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ScopedThrottle(_SharedCounting, throttling.ScopedRateThrottle):
    pass


class BookingCreateThrottle(_SharedCounting, throttling.SimpleRateThrottle):
    """Booking creation per talker: each booking makes a Stripe customer and PaymentIntent and holds a slot."""

    scope = "booking_create"

    def get_cache_key(self, request, view) -> str:
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
