"""Item 8 (web side) and 10: everything under /api/ answers JSON in the error shape, never HTML or a 5xx
for bad input, and API answers are never cached."""

import threading

import pytest
from django.db import connection

from web.models import User
from web.tests.factories import TalkerFactory

pytestmark = pytest.mark.django_db


def _is_error_shape(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body


def test_an_unrouted_api_path_is_a_json_404(api_client):
    _is_error_shape(api_client.get("/api/no/such/thing/"), 404)


def test_a_wrong_method_is_a_json_405(api_client):
    _is_error_shape(api_client.delete("/api/auth/token/"), 405)


def test_a_body_over_the_limit_is_a_json_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client.post("/api/auth/register/", "x" * 2000, content_type="application/json")

    _is_error_shape(response, 413)


def test_a_deeply_nested_body_is_a_json_400(api_client):
    response = api_client.post("/api/auth/register/", "[" * 100_000 + "]" * 100_000, content_type="application/json")

    assert "nested" in _is_error_shape(response, 400)["error"]["message"]


def test_a_bad_token_message_is_a_sentence_not_a_repr(api_client):
    body = _is_error_shape(api_client.get("/api/auth/me/", HTTP_AUTHORIZATION="Bearer not.a.token"), 401)

    assert body["error"]["code"] == "token_not_valid"
    assert "{" not in body["error"]["message"]


def test_token_and_booking_answers_are_never_cached(api_client):
    TalkerFactory(username="eve")
    tokens = api_client.post(
        "/api/auth/token/", {"username": "eve", "password": "correct-horse-battery-staple"}, format="json"
    )
    bookings = api_client.get("/api/payment/bookings/", HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access']}")

    assert tokens["Cache-Control"] == "no-store"
    assert bookings["Cache-Control"] == "no-store"


def test_usernames_are_unique_whatever_their_case_in_the_database():
    from django.db import IntegrityError, transaction

    User.objects.create(username="raceuser")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="RACEUSER")


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_register_of_the_same_name_in_two_cases_gives_one_user_and_one_400():
    from rest_framework.test import APIClient

    barrier = threading.Barrier(2)
    statuses = []

    def register(username):
        barrier.wait()
        response = APIClient().post(
            "/api/auth/register/",
            {"username": username, "password": "a-long-passphrase-42", "email": "r@example.com", "role": "talker"},
            format="json",
        )
        statuses.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=register, args=(name,)) for name in ("raceuser", "RACEUSER")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201, 400]
    assert User.objects.filter(username__iexact="raceuser").count() == 1
