"""The booking API as a frontend uses it, against PostgreSQL, Redis, a real worker and the emulator."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing import stripe_gateway
from billing.models import Payment
from booking.models import Booking
from booking.tests.factories import BookingFactory, PackageFactory
from web.testing import auth_client, broker_down
from web.tests.factories import ListenerFactory, TalkerFactory

CREATE = "/api/payment/bookings/create_booking/"


def _body(listener, package, *, hours=48, notes="first session"):
    return {
        "listener_id": listener.pk,
        "package_id": package.pk,
        "scheduled_at": (timezone.now() + timedelta(hours=hours)).isoformat(),
        "notes": notes,
    }


@pytest.mark.django_db
def test_packages_are_public_with_money_as_decimal_strings(api_client):
    PackageFactory(name="20 Minute Session", duration_minutes=20, price="30.00")
    PackageFactory(name="Retired", is_active=False)

    response = api_client.get("/api/payment/packages/")

    assert response.status_code == 200
    [package] = response.json()
    assert package["name"] == "20 Minute Session"
    assert package["price"] == "30.00"
    assert package["app_fee_percentage"] == "10.00"
    assert set(package) == {"id", "name", "duration_minutes", "price", "app_fee_percentage", "description"}


@pytest.mark.django_db
def test_stripe_config_is_public_and_names_the_emulator(api_client, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:12111"
    body = api_client.get("/api/payment/stripe/config/").json()
    assert body["publishable_key"].startswith("pk_")
    assert body["emulator_url"] == "http://127.0.0.1:12111"


@pytest.mark.parametrize(
    ("price", "total", "fee", "share"),
    [("30.00", "30.00", "3.00", "27.00"), ("50.00", "50.00", "5.00", "45.00"), ("70.00", "70.00", "7.00", "63.00")],
)
def test_booking_gets_a_payment_intent_from_the_worker(celery_worker, stripe_emulator, price, total, fee, share):
    talker, listener = TalkerFactory(), ListenerFactory()
    package = PackageFactory(price=price)

    response = auth_client(talker).post(CREATE, _body(listener, package), format="json")

    assert response.status_code == 201, response.content
    booking, payment = response.json()["booking"], response.json()["payment"]
    assert (booking["status"], booking["total_amount"], booking["app_fee"], booking["listener_amount"]) == (
        "pending",
        total,
        fee,
        share,
    )
    assert booking["talker"] == talker.pk and booking["listener"] == listener.pk
    assert payment["payment_intent_id"].startswith("pi_")
    assert payment["client_secret"].startswith(payment["payment_intent_id"] + "_secret_")
    assert (payment["amount"], payment["currency"], payment["status"]) == (total, "usd", "requires_payment_method")

    intent = stripe_gateway.payment_intent_retrieve(payment["payment_intent_id"])
    assert intent["amount"] == int(total.replace(".", ""))
    assert intent["metadata"]["booking_id"] == str(booking["id"])
    assert intent["transfer_group"] == f"booking-{booking['id']}"


@pytest.mark.django_db(transaction=True)
def test_without_a_worker_the_booking_answers_202_with_a_poll_url(settings):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0.2
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()

    with broker_down():  # the work is recorded but no worker can pick it up in time
        response = auth_client(talker).post(CREATE, _body(listener, package), format="json")

    assert response.status_code == 202
    body = response.json()
    assert body["payment"]["client_secret"] is None
    assert body["payment"]["status"] == "awaiting_intent"
    assert body["poll_url"] == f"/api/payment/bookings/{body['booking']['id']}/"
    polled = auth_client(talker).get(body["poll_url"])
    assert polled.status_code == 200
    assert polled.json()["payment"]["status"] == "awaiting_intent"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        (lambda b, ctx: b.update(listener_id=999999), "listener_id", 400),
        (lambda b, ctx: b.update(listener_id=ctx["talker"].pk), "listener_id", 400),
        (lambda b, ctx: b.update(listener_id=ctx["other_talker"].pk), "listener_id", 400),
        (lambda b, ctx: b.update(listener_id=ctx["paused"].pk), "listener_id", 400),
        (lambda b, ctx: b.update(package_id=ctx["retired"].pk), "package_id", 400),
        (
            lambda b, ctx: b.update(scheduled_at=(timezone.now() - timedelta(minutes=1)).isoformat()),
            "scheduled_at",
            400,
        ),
        (lambda b, ctx: b.update(scheduled_at="next tuesday"), "scheduled_at", 400),
        (lambda b, ctx: b.pop("package_id"), "package_id", 400),
        (lambda b, ctx: b.update(listener_id="abc"), "listener_id", 400),
    ],
)
def test_invalid_bookings_are_refused_naming_the_field_and_record_nothing(change, field, status, settings):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0
    ctx = {
        "talker": TalkerFactory(),
        "other_talker": TalkerFactory(),
        "paused": ListenerFactory(accepts_bookings=False),
        "retired": PackageFactory(is_active=False),
    }
    body = _body(ListenerFactory(), PackageFactory())
    change(body, ctx)

    response = auth_client(ctx["talker"]).post(CREATE, body, format="json")

    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"]
    assert Booking.objects.count() == 0 and Payment.objects.count() == 0


@pytest.mark.django_db
def test_only_authenticated_talkers_can_book(api_client, settings):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0
    listener, package = ListenerFactory(), PackageFactory()

    assert api_client.post(CREATE, _body(listener, package), format="json").status_code == 401
    as_listener = auth_client(ListenerFactory()).post(CREATE, _body(listener, package), format="json")
    assert as_listener.status_code == 403
    assert Booking.objects.count() == 0


@pytest.mark.django_db
def test_an_overlapping_slot_is_a_409_but_back_to_back_is_fine(settings):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0
    talker, listener = TalkerFactory(), ListenerFactory()
    package = PackageFactory(duration_minutes=60)
    start = timezone.now() + timedelta(days=2)
    client = auth_client(talker)
    first = {"listener_id": listener.pk, "package_id": package.pk, "scheduled_at": start.isoformat()}

    assert client.post(CREATE, first, format="json").status_code in (201, 202)
    overlapping = {**first, "scheduled_at": (start + timedelta(minutes=30)).isoformat()}
    refused = client.post(CREATE, overlapping, format="json")
    assert refused.status_code == 409
    assert "scheduled_at" in refused.json()["error"]["fields"]
    back_to_back = {**first, "scheduled_at": (start + timedelta(minutes=60)).isoformat()}
    assert client.post(CREATE, back_to_back, format="json").status_code in (201, 202)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_for_one_slot_cannot_both_win(settings):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0
    listener, package = ListenerFactory(), PackageFactory(duration_minutes=40)
    talkers = [TalkerFactory() for _ in range(6)]
    body = _body(listener, package)
    barrier = threading.Barrier(len(talkers))
    statuses = []

    def book(talker):
        client = auth_client(talker)
        barrier.wait()
        statuses.append(client.post(CREATE, body, format="json").status_code)
        connection.close()

    threads = [threading.Thread(target=book, args=(t,)) for t in talkers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses.count(409) == len(talkers) - 1, statuses
    assert statuses.count(202) + statuses.count(201) == 1
    assert Booking.objects.filter(listener=listener).count() == 1


def test_an_idempotent_retry_returns_the_first_booking(celery_worker, stripe_emulator):
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    client = auth_client(talker)
    body = _body(listener, package)

    first = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="retry-42")
    again = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="retry-42")

    assert first.status_code == 201
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["booking"]["id"] == first.json()["booking"]["id"]
    assert again.json()["payment"]["client_secret"] == first.json()["payment"]["client_secret"]
    assert Booking.objects.count() == 1
    different = client.post(CREATE, {**body, "notes": "changed"}, format="json", HTTP_IDEMPOTENCY_KEY="retry-42")
    assert different.status_code == 422
    assert "Idempotency-Key" in different.json()["error"]["fields"]
    assert Booking.objects.count() == 1


def test_a_request_that_failed_validation_does_not_use_up_its_idempotency_key(celery_worker, stripe_emulator):
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    client = auth_client(talker)
    body = _body(listener, package)
    too_far = {**body, "scheduled_at": (timezone.now() + timedelta(days=400)).isoformat()}

    refused = client.post(CREATE, too_far, format="json", HTTP_IDEMPOTENCY_KEY="fix-and-retry")
    fixed = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="fix-and-retry")

    assert refused.status_code == 400 and "scheduled_at" in refused.json()["error"]["fields"]
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed
    assert Booking.objects.count() == 1


@pytest.mark.django_db
def test_another_users_booking_is_invisible():
    booking = BookingFactory()
    stranger = TalkerFactory()
    client = auth_client(stranger)

    assert client.get(f"/api/payment/bookings/{booking.pk}/").status_code == 404
    assert client.post(f"/api/payment/bookings/{booking.pk}/start_session/").status_code == 404
    assert client.post(f"/api/payment/bookings/{booking.pk}/complete_session/").status_code == 404
    assert client.get("/api/payment/bookings/").json()["results"] == []
    booking.refresh_from_db()
    assert booking.status == Booking.Status.PENDING


@pytest.mark.django_db
def test_booking_list_shows_both_sides_paginated_and_filters_by_status():
    talker, listener = TalkerFactory(), ListenerFactory()
    BookingFactory(talker=talker, listener=listener, status=Booking.Status.CONFIRMED)
    BookingFactory(talker=talker, listener=listener)
    BookingFactory()

    as_talker = auth_client(talker).get("/api/payment/bookings/").json()
    as_listener = auth_client(listener).get("/api/payment/bookings/?status=confirmed").json()

    assert as_talker["count"] == 2 and "next" in as_talker
    assert [b["status"] for b in as_listener["results"]] == ["confirmed"]


@pytest.mark.django_db
def test_a_session_starts_only_when_confirmed_and_completes_only_in_progress():
    booking = BookingFactory(scheduled_at=timezone.now() + timedelta(minutes=5))
    client = auth_client(booking.listener)
    start = f"/api/payment/bookings/{booking.pk}/start_session/"
    complete = f"/api/payment/bookings/{booking.pk}/complete_session/"

    unpaid = client.post(start)
    assert unpaid.status_code == 400 and "status" in unpaid.json()["error"]["fields"]
    assert client.post(complete).status_code == 400

    Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CONFIRMED)
    started = client.post(start)
    assert started.status_code == 200
    assert started.json()["status"] == "in_progress" and started.json()["started_at"]
    assert client.post(start).status_code == 400

    # The session runs its booked 20 minutes (see test_session_rules for the minimum).
    Booking.objects.filter(pk=booking.pk).update(started_at=timezone.now() - timedelta(minutes=20))
    completed = auth_client(booking.talker).post(complete)
    assert completed.status_code == 200
    assert completed.json()["status"] == "completed"
    assert completed.json()["actual_duration_minutes"] == 20


@pytest.mark.django_db
def test_payments_list_shows_only_the_callers_payments():
    from billing.tests.factories import PaymentFactory

    mine = PaymentFactory()
    PaymentFactory()

    results = auth_client(mine.talker).get("/api/payment/payments/").json()["results"]

    assert [p["id"] for p in results] == [mine.pk]
    assert results[0]["amount"] == "30.00"
