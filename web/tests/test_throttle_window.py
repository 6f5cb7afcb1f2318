"""The window count behind the Stripe webhook's throttle (web.cache.FallbackRedisCache.hit): atomic across
processes, a window that opens at the first request, Retry-After from what is left of it, and counting in
the process while Redis is down."""

import threading
import uuid

import pytest
from django.core.cache import caches
from rest_framework.throttling import ScopedRateThrottle

from billing.tests.stripe_events import payment_intent_object, signed_body, stripe_event
from web.testing import WEBHOOK_PATH

pytestmark = pytest.mark.django_db


def _deliver(client):
    body, signature = signed_body(stripe_event("payment_intent.succeeded", payment_intent_object()))
    return client.post(WEBHOOK_PATH, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)


def test_hits_from_many_threads_at_once_are_each_counted_once():
    key = f"test-window-{uuid.uuid4().hex}"
    seen: list[int] = []

    def hit_ten_times():
        cache = caches["throttle"]  # each thread its own client, as each web thread has
        seen.extend(cache.hit(key, window=60)[0] for _ in range(10))

    threads = [threading.Thread(target=hit_ten_times) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(seen) == list(range(1, 81))


def test_a_window_opens_at_its_first_hit_and_says_what_is_left_of_it():
    key = f"test-window-{uuid.uuid4().hex}"
    first, left_first = caches["throttle"].hit(key, window=60)
    second, left_second = caches["throttle"].hit(key, window=60)

    assert (first, second) == (1, 2)
    assert 59 <= left_first <= 60
    assert left_second <= left_first


def test_deliveries_over_the_webhook_rate_get_429_with_the_window_left_as_retry_after(api_client, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"stripe_webhook": "2/min"})

    responses = [_deliver(api_client) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 429]
    assert 0 < int(responses[2]["Retry-After"]) <= 60


def test_with_redis_down_the_webhook_throttle_counts_in_the_process(api_client, monkeypatch, settings):
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {**settings.CACHES["throttle"], "LOCATION": "redis://127.0.0.1:9/0"},
    }
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"stripe_webhook": "2/min"})

    codes = [_deliver(api_client).status_code for _ in range(3)]

    assert codes == [200, 200, 429]


def test_the_per_user_api_throttle_counts_a_window_per_user_in_one_redis_key(monkeypatch):
    from web.api.throttling import UserThrottle
    from web.testing import auth_client
    from web.tests.factories import TalkerFactory

    monkeypatch.setattr(UserThrottle, "rate", "3/min", raising=False)
    talker, other = TalkerFactory(), TalkerFactory()
    client = auth_client(talker)

    codes = [client.get("/api/payment/bookings/").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    throttled = client.get("/api/payment/bookings/")
    assert throttled.json()["error"]["code"] == "throttled" and 0 < int(throttled["Retry-After"]) <= 60
    # The count is one integer in Redis (not a log of request times), and another user has their own.
    key = caches["throttle"].make_and_validate_key(f"throttle_user_{talker.pk}")
    assert int(caches["throttle"]._cache.get_client().get(key)) == 5
    assert auth_client(other).get("/api/payment/bookings/").status_code == 200
