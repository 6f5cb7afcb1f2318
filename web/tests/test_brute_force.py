"""Item 4: lockout per username and per address (admin and token endpoints), throttles keyed on the
trusted client address and counted in Redis, degrading to per-process counting when Redis is down."""

import pytest
from django.core.cache import caches

from web.api.throttling import AuthThrottle
from web.tests.factories import TalkerFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"  # the factories' password


def _sign_in(client, username, password, ip="10.0.0.1", **headers):
    return client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip, **headers
    )


def test_failed_sign_ins_lock_the_username_whatever_the_address(api_client, settings):
    TalkerFactory(username="bo")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        assert _sign_in(api_client, "bo", "wrong", ip=f"10.0.1.{attempt}").status_code == 401

    locked = _sign_in(api_client, "BO", PASSWORD, ip="10.0.2.1")

    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "locked_out"


def test_failed_sign_ins_lock_the_address_whatever_the_username(api_client, settings):
    TalkerFactory(username="cy")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        assert _sign_in(api_client, f"guess{attempt}", "wrong", ip="10.0.3.3").status_code == 401

    assert _sign_in(api_client, "cy", PASSWORD, ip="10.0.3.3").status_code == 429
    assert _sign_in(api_client, "cy", PASSWORD, ip="10.0.3.4").status_code == 200


def test_the_admin_login_is_locked_out_too(client, settings):
    TalkerFactory(username="root", is_staff=True, is_superuser=True)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.0.4.1")
        assert response.status_code == 200  # the form again, with its error
    response = client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.0.4.1")
    assert response.status_code == 429

    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD}, REMOTE_ADDR="10.0.4.1")

    assert response.status_code == 429
    assert not client.session.get("_auth_user_id")


@pytest.fixture
def auth_rate(monkeypatch):
    monkeypatch.setattr(AuthThrottle, "rate", "3/min", raising=False)


@pytest.mark.usefixtures("auth_rate")
def test_a_forged_x_forwarded_for_does_not_escape_the_throttle(api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    statuses = [
        _sign_in(api_client, "nobody", "x", ip="10.0.5.5", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(4)
    ]

    assert statuses == [401, 401, 401, 429]


@pytest.mark.usefixtures("auth_rate")
def test_behind_a_trusted_proxy_each_client_address_has_its_own_count(api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 100
    for n in range(4):
        # The client forges a first entry; our proxy appends the address it really saw.
        forwarded = f"203.0.113.9, 198.51.100.{n}"
        assert _sign_in(api_client, "nobody", "x", ip="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded).status_code == 401

    forwarded = "203.0.113.9, 198.51.100.0"
    statuses = [
        _sign_in(api_client, "nobody", "x", ip="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded).status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


@pytest.mark.usefixtures("auth_rate")
def test_throttle_counts_live_in_redis_for_every_web_process(api_client):
    _sign_in(api_client, "nobody", "x", ip="10.0.6.6")

    redis = caches["throttle"]._cache.get_client()
    assert any(b"10.0.6.6" in key for key in redis.scan_iter("talkpay-throttle:*"))


@pytest.mark.usefixtures("auth_rate")
def test_with_redis_down_the_throttle_counts_per_process_instead_of_failing(api_client, settings):
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {**settings.CACHES["throttle"], "LOCATION": "redis://127.0.0.1:9/0"},
    }
    statuses = [_sign_in(api_client, "nobody", "x", ip="10.0.7.7").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
