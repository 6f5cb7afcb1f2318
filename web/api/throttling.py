"""Throttles keyed on the trusted client address (web.api.client_ip) and counted in the shared Redis cache."""

from typing import cast

from django.core.cache import caches
from rest_framework import throttling

from web.api.client_ip import client_ip
from web.cache import FallbackRedisCache


class _SharedCounting:
    def __init__(self) -> None:
        self.cache = caches["throttle"]
        super().__init__()

    def get_ident(self, request) -> str:
        return client_ip(request)


class AuthThrottle(_SharedCounting, throttling.SimpleRateThrottle):
    """Sign-in, refresh and registration, per client address whoever is signed in (django-axes adds the
    per-username lockout on top)."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ScopedThrottle(_SharedCounting, throttling.ScopedRateThrottle):
    pass


class _WindowCount(throttling.SimpleRateThrottle):
    """A count per window (the window opens at the key's first request) instead of DRF's log of every
    request's time: one atomic Redis round trip per request (web.cache.FallbackRedisCache.hit), where the
    log is read and written back whole, two round trips and up to one float per request allowed (60,000
    for the webhook endpoint), and two processes writing at once lose each other's requests. A window
    lets up to twice the rate through across its boundary: right for a flood guard at thousands a
    minute, not for sign-in attempts (AuthThrottle keeps the log)."""

    # Set by ScopedRateThrottle from the view's scope before allow_request runs.
    num_requests: int
    duration: int
    _window_left = 0.0

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        cache = cast(FallbackRedisCache, self.cache)  # CACHES["throttle"]
        hits, self._window_left = cache.hit(self.key, window=self.duration)
        return hits <= self.num_requests

    def wait(self) -> float:
        return self._window_left


class ScopedWindowThrottle(_SharedCounting, throttling.ScopedRateThrottle, _WindowCount):
    """ScopedThrottle for scopes of high rates (the Stripe webhook's)."""


# Every API request passes these two, so they count per window (one Redis round trip) rather than
# keep DRF's request log (a read and a write of the whole log): flood guards at thousands a minute.
class UserThrottle(_SharedCounting, _WindowCount, throttling.UserRateThrottle):
    pass


class AnonThrottle(_SharedCounting, _WindowCount, throttling.AnonRateThrottle):
    pass


class BookingCreateThrottle(_SharedCounting, throttling.SimpleRateThrottle):
    """Booking creation per talker: each booking makes a Stripe customer and PaymentIntent and holds a slot."""

    scope = "booking_create"

    def get_cache_key(self, request, view) -> str:
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
