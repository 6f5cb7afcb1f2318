"""Issue 17 item 1: an Idempotency-Key whose request died is answered from what was committed, never
409 forever. The booking and its key's answer commit together; a claim whose request died before its
transaction is taken over after a short lease."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from booking.api.views import BookingViewSet
from booking.models import Booking
from booking.tests.factories import PackageFactory
from booking.tests.test_api import CREATE, _body
from web.idempotency import _fingerprint
from web.models import IdempotencyRecord
from web.testing import auth_client, broker_down
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


class WorkerKilled(BaseException):
    """What a gunicorn worker killed mid-request looks like to the code after the kill point: nothing
    after it runs (BaseException: no `except Exception` cleans up)."""


@pytest.fixture
def fast(settings):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0.1
    settings.IDEMPOTENCY_LEASE_SECONDS = 60  # the retries below must not need a lease to run out
    settings.IDEMPOTENCY_LOCK_WAIT_SECONDS = 5


def test_a_request_killed_after_its_booking_committed_is_answered_on_retry(fast, monkeypatch):
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    client = auth_client(talker)
    body = _body(listener, package)
    answered = BookingViewSet._created_response
    built = []

    def killed_once(self, request, booking_id):
        built.append(booking_id)
        if len(built) == 1:
            raise WorkerKilled  # after the commit, before any answer was sent or saved
        return answered(self, request, booking_id)

    monkeypatch.setattr(BookingViewSet, "_created_response", killed_once)

    with broker_down():  # no worker: the answer is the 202 with the poll URL
        with pytest.raises(WorkerKilled):
            client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="killed-1")
        started = time.monotonic()
        retry = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="killed-1")
        elapsed = time.monotonic() - started

    assert retry.status_code in (201, 202), retry.content
    assert retry.json()["booking"]["id"] == built[0]
    assert retry["Idempotent-Replayed"] == "true"
    assert Booking.objects.filter(talker=talker).count() == 1
    assert elapsed < 5  # answered at once, long before the 60 s lease


def test_a_claim_whose_request_died_before_its_transaction_is_taken_over_after_the_lease(fast, settings):
    settings.IDEMPOTENCY_LEASE_SECONDS = 2
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    client = auth_client(talker)
    body = _body(listener, package)
    # The state a request killed between its claim and its transaction leaves: a claim, no answer.
    IdempotencyRecord.objects.create(
        user=talker, key="dead-1", endpoint="bookings.create_booking", request_fingerprint=_fingerprint(body)
    )

    young = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="dead-1")
    IdempotencyRecord.objects.filter(key="dead-1").update(claimed_at=timezone.now() - timedelta(seconds=3))
    with broker_down():
        taken_over = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="dead-1")
    again = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="dead-1")

    assert young.status_code == 409
    assert young.json()["error"]["code"] == "idempotency_key_in_use"
    assert taken_over.status_code in (201, 202), taken_over.content
    [booking] = Booking.objects.filter(talker=talker)
    assert taken_over.json()["booking"]["id"] == booking.pk
    assert again.status_code in (201, 202) and again.json()["booking"]["id"] == booking.pk


def test_a_retry_waits_for_the_first_request_still_in_its_transaction(fast):
    """The first request holds its claim's lock while it books; the retry waits and gets its booking."""
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    client = auth_client(talker)
    body = _body(listener, package)
    with broker_down():
        first = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="slow-1")
    booking_id = first.json()["booking"]["id"]
    answer = IdempotencyRecord.objects.filter(key="slow-1").values("response_status", "response_body").get()
    IdempotencyRecord.objects.filter(key="slow-1").update(response_status=None, response_body=None)
    locked = threading.Event()

    def first_request_commits_late():
        with transaction.atomic():
            IdempotencyRecord.objects.select_for_update().get(key="slow-1")
            locked.set()
            time.sleep(1.0)
            IdempotencyRecord.objects.filter(key="slow-1").update(**answer)
        connection.close()

    holder = threading.Thread(target=first_request_commits_late)
    holder.start()
    assert locked.wait(5)
    with broker_down():
        retry = client.post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="slow-1")
    holder.join()

    assert retry.status_code in (201, 202), retry.content
    assert retry.json()["booking"]["id"] == booking_id
    assert Booking.objects.filter(talker=talker).count() == 1


def test_a_request_stalled_past_its_lease_and_taken_over_waits_for_the_taker_and_replays_its_answer(
    fast, settings, monkeypatch
):
    """The first request made its claim, then stalled past the lease; a retry took the claim over and is
    booking under its lock. The first one, waking, waits for that lock (its own claim: no lock_timeout),
    finds the claim answered by the retry and replays that answer: one booking."""
    from web import idempotency

    settings.IDEMPOTENCY_LEASE_SECONDS = 1
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    body = _body(listener, package)
    perform = idempotency._perform_under_claim
    answers = {}

    def retry_takes_over():
        with broker_down():
            answers["retry"] = auth_client(talker).post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="stall-1")
        connection.close()

    def stalled_first(record_id, token, work, *, wait):
        monkeypatch.setattr(idempotency, "_perform_under_claim", perform)  # only the first request stalls
        assert wait is None  # its own fresh claim
        IdempotencyRecord.objects.filter(pk=record_id).update(claimed_at=timezone.now() - timedelta(seconds=5))
        taker = threading.Thread(target=retry_takes_over)
        taker.start()
        taker.join()
        return perform(record_id, token, work, wait=wait)

    monkeypatch.setattr(idempotency, "_perform_under_claim", stalled_first)
    with broker_down():
        first = auth_client(talker).post(CREATE, body, format="json", HTTP_IDEMPOTENCY_KEY="stall-1")

    retry = answers["retry"]
    assert retry.status_code in (201, 202), retry.content
    assert first.status_code == retry.status_code and first["Idempotent-Replayed"] == "true"
    [booking] = Booking.objects.filter(talker=talker)
    assert first.json()["booking"]["id"] == retry.json()["booking"]["id"] == booking.pk


def test_invalid_input_and_a_server_error_free_the_key(fast, monkeypatch):
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    client = auth_client(talker)
    good = _body(listener, package)
    bad = {**good, "scheduled_at": "not a date"}

    refused = client.post(CREATE, bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    with broker_down():
        fixed = client.post(CREATE, good, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")

    assert refused.status_code == 400
    assert fixed.status_code in (201, 202) and "Idempotent-Replayed" not in fixed

    from booking import services

    def boom(**_):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "booking_create", boom)
    client.raise_request_exception = False
    assert client.post(CREATE, _body(listener, package), format="json", HTTP_IDEMPOTENCY_KEY="err-1").status_code == 500
    assert not IdempotencyRecord.objects.filter(key="err-1").exists()
