"""Item 7: the PaymentIntent's client_secret goes only to the paying talker, only while the payment is open."""

import pytest

from billing.models import Payment
from billing.tests.factories import PaymentFactory
from web.testing import auth_client

pytestmark = pytest.mark.django_db


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
