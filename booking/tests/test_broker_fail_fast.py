"""Issue 17 item 2: with the broker down, refusing or frozen, a booking is saved and answered in well
under a second, and the sweeper enqueues its PaymentIntent once the broker is back."""

import os
import signal
import time

import pytest
import redis

from billing.models import Payment
from billing.payments import payments_sweep_awaiting_intent
from booking.tests.factories import PackageFactory
from booking.tests.test_api import CREATE, _body
from scripts.services import free_port, start_embedded_redis
from web.testing import auth_client, broker_down
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (never the shared one): the test freezes it."""
    process, url = start_embedded_redis(workdir=tmp_path)
    yield process, url
    os.kill(process.pid, signal.SIGCONT)
    process.kill()
    process.wait()


def _book_timed(settings) -> tuple[int, float, dict]:
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0.1
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    started = time.monotonic()
    response = auth_client(talker).post(CREATE, _body(listener, package), format="json")
    return response.status_code, time.monotonic() - started, response.json()


def test_a_booking_is_answered_fast_when_the_broker_refuses_connections(settings):
    with broker_down(f"redis://127.0.0.1:{free_port()}/0"):
        status, seconds, body = _book_timed(settings)

    assert status == 202
    assert seconds < 1.0, f"booking took {seconds:.2f} s with the broker refusing"
    assert Payment.objects.get(booking_id=body["booking"]["id"]).status == Payment.Status.AWAITING_INTENT


def test_a_booking_is_answered_fast_when_the_broker_is_frozen_and_the_sweeper_enqueues_it_later(settings, own_redis):
    settings.OUTBOX_RESEND_AFTER_SECONDS = 0
    process, url = own_redis
    with broker_down(url):
        # A first publish opens the pooled connection, as in a web process that has been serving.
        _book_timed(settings)
        redis.Redis.from_url(url).delete("payments")
        os.kill(process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
        status, seconds, body = _book_timed(settings)
        os.kill(process.pid, signal.SIGCONT)

        assert status == 202
        assert seconds < 1.0, f"booking took {seconds:.2f} s with the broker frozen"
        queued = redis.Redis.from_url(url).llen("payments")  # a timed-out push may still land: at least once
        assert payments_sweep_awaiting_intent() == 2  # both bookings' payments: no worker ran either

    assert redis.Redis.from_url(url).llen("payments") == queued + 2
