"""Item 7 and 8 (booking side): the client_secret goes only to the paying talker while the payment is open;
booking input is bounded (dates, ids), so it answers 400, never 500."""

import pytest

from billing.models import Payment
from billing.tests.factories import PaymentFactory
from web.testing import auth_client

pytestmark = pytest.mark.django_db

CREATE = "/api/payment/bookings/create_booking/"


def _detail(user, booking):
    response = auth_client(user).get(f"/api/payment/bookings/{booking.pk}/")
    assert response.status_code == 200
    return response.json()["payment"]


def test_the_talker_sees_the_client_secret_of_an_open_payment():
    payment = PaymentFactory(status=Payment.Status.REQUIRES_PAYMENT_METHOD, client_secret="pi_1_secret_abc")

    assert _detail(payment.talker, payment.booking)["client_secret"] == "pi_1_secret_abc"


def test_the_listener_never_sees_the_talkers_client_secret():
    payment = PaymentFactory(status=Payment.Status.REQUIRES_PAYMENT_METHOD, client_secret="pi_1_secret_abc")

    assert _detail(payment.booking.listener, payment.booking)["client_secret"] is None
    listed = auth_client(payment.booking.listener).get("/api/payment/bookings/").json()["results"]
    assert listed[0]["payment"]["client_secret"] is None


@pytest.mark.parametrize("status", [Payment.Status.SUCCEEDED, Payment.Status.CANCELED, Payment.Status.FAILED])
def test_a_final_payment_shows_no_client_secret_even_to_the_talker(status):
    payment = PaymentFactory(status=status, client_secret="pi_1_secret_abc")

    assert _detail(payment.talker, payment.booking)["client_secret"] is None


@pytest.mark.parametrize("scheduled_at", ["9999-12-31T23:59:00Z", "3000-01-01T00:00:00Z"])
def test_a_session_too_far_ahead_is_a_400_naming_scheduled_at(scheduled_at):
    from booking.tests.factories import PackageFactory
    from web.tests.factories import ListenerFactory, TalkerFactory

    body = {"listener_id": ListenerFactory().pk, "package_id": PackageFactory().pk, "scheduled_at": scheduled_at}
    response = auth_client(TalkerFactory()).post("/api/payment/bookings/create_booking/", body, format="json")

    assert response.status_code == 400
    assert "scheduled_at" in response.json()["error"]["fields"]


def test_an_id_beyond_a_bigint_is_a_400_naming_it():
    from web.tests.factories import TalkerFactory

    body = {"listener_id": 10**30, "package_id": 1, "scheduled_at": "2030-01-01T00:00:00Z"}
    response = auth_client(TalkerFactory()).post("/api/payment/bookings/create_booking/", body, format="json")

    assert response.status_code == 400
    assert "listener_id" in response.json()["error"]["fields"]


def test_booking_creation_is_throttled_per_talker(monkeypatch):
    from booking.tests.factories import PackageFactory
    from web.api.throttling import BookingCreateThrottle
    from web.tests.factories import ListenerFactory, TalkerFactory

    monkeypatch.setattr(BookingCreateThrottle, "rate", "2/hour", raising=False)
    squatter, other = TalkerFactory(), TalkerFactory()
    body = {"listener_id": ListenerFactory().pk, "package_id": PackageFactory().pk, "scheduled_at": "2000-01-01T00:00Z"}

    statuses = [auth_client(squatter).post(CREATE, body, format="json").status_code for _ in range(3)]

    assert statuses == [400, 400, 429]  # counted even when refused: each try costs us work
    assert auth_client(other).post(CREATE, body, format="json").status_code == 400


@pytest.mark.parametrize(
    ("key", "message"), [("k" * 256, "longer than 255"), ("key\x00", "control"), ("a\x1fb", "control")]
)
def test_a_malformed_idempotency_key_is_a_400_naming_the_header(key, message):
    from booking.tests.factories import PackageFactory
    from web.tests.factories import ListenerFactory, TalkerFactory

    body = {"listener_id": ListenerFactory().pk, "package_id": PackageFactory().pk, "scheduled_at": "2030-01-01T00:00Z"}
    response = auth_client(TalkerFactory()).post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400, response.content
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert message in response.json()["error"]["message"]
