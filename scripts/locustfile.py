"""The users `make load` (scripts/load.py) sends at a running Talkpay: run by Locust, not imported by the app.

Talkers browse packages, listeners and their bookings, book with an `Idempotency-Key`, pay on the
Stripe emulator as Stripe.js does (`POST /v1/payment_intents/{id}/confirm` with the publishable key and
the client secret in the form body), poll the booking until the webhook's worker confirms it, and cancel
some bookings. Listeners start and complete the sessions booked close to now (their start window opens
SESSION_START_EARLY_MINUTES before). scripts/load.py seeds the users and passes them in LOAD_SEED_FILE.

Two flow timings are reported as requests of type FLOW (Locust computes their percentiles like any
request's): `payment_to_confirmed`, from the emulator's answer to the confirmation until a poll sees the
booking confirmed, and `book_to_confirmed`, from sending create_booking until then.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import gevent
from gevent.queue import Empty, Queue
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

SEED = json.loads(open(os.environ["LOAD_SEED_FILE"]).read())
POLL_SECONDS = float(os.environ.get("LOAD_POLL_SECONDS", "0.2"))
CONFIRM_TIMEOUT_SECONDS = float(os.environ.get("LOAD_CONFIRM_TIMEOUT_SECONDS", "30"))
MAX_REQUESTS = int(os.environ.get("LOAD_MAX_REQUESTS", "0"))
CANCEL_FRACTION = float(os.environ.get("LOAD_CANCEL_FRACTION", "0.15"))
SESSION_FRACTION = float(os.environ.get("LOAD_SESSION_FRACTION", "0.2"))
CARD = {"number": "4242424242424242", "exp_month": "12", "exp_year": str(datetime.now(UTC).year + 3), "cvc": "123"}

# Every booking gets a slot of its own: far ones go round the listeners an hour apart from SLOT_BASE on;
# near ones (to start the session now) each take a listener of the session pool at a few minutes from now.
_far_slots = itertools.count()
_near_slots = itertools.count()
_talkers = itertools.cycle(SEED["talkers"])
_listeners = itertools.cycle(SEED["session_listeners"])
SLOT_BASE = datetime.fromisoformat(SEED["slot_base"])
# Confirmed near bookings waiting for their listener: (booking id, listener token).
sessions_to_run: Queue = Queue()
_http_requests = 0


_environment = None


@events.init.add_listener
def _remember_environment(environment, **_):
    global _environment
    _environment = environment


@events.request.add_listener
def _stop_after_max_requests(request_type, **_):
    """Locust bounds users and time; this bounds the requests too (LOAD_MAX_REQUESTS, 0 = no bound)."""
    global _http_requests
    if request_type == "FLOW" or not MAX_REQUESTS:
        return
    _http_requests += 1
    if _http_requests == MAX_REQUESTS and _environment is not None and _environment.runner is not None:
        print(f"LOAD_MAX_REQUESTS={MAX_REQUESTS} reached: stopping", flush=True)
        gevent.spawn(_environment.runner.quit)


# Every request's time and outcome, and the moment every user is running (LOAD_SAMPLES_FILE): load.py
# reports the steady state, all users running, beside Locust's whole-run figures, which include the
# ramp-up (fewer users, every connection and web thread still cold).
_samples = (
    open(os.environ["LOAD_SAMPLES_FILE"], "w", buffering=1 << 16) if os.environ.get("LOAD_SAMPLES_FILE") else None
)


@events.request.add_listener
def _record_sample(request_type, name, response_time, exception=None, **_):
    if _samples is not None:
        _samples.write(
            f"{time.time():.3f}\t{request_type}\t{name}\t{response_time:.1f}\t{int(exception is not None)}\n"
        )


@events.spawning_complete.add_listener
def _record_all_spawned(user_count, **_):
    if _samples is not None:
        _samples.write(f"{time.time():.3f}\tSPAWNED\t-\t{user_count}\t0\n")


@events.quitting.add_listener
def _close_samples(**_):
    if _samples is not None:
        _samples.close()


def _flow(name: str, seconds: float, error: Exception | None = None) -> None:
    _environment.events.request.fire(
        request_type="FLOW",
        name=name,
        response_time=seconds * 1000,
        response_length=0,
        exception=error,
        context={},
    )


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class TalkerUser(FastHttpUser):
    weight = 4
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.talker = next(_talkers)
        self.auth = _bearer(self.talker["token"])
        self.emulator = SEED["emulator_url"]

    @task(2)
    def browse_packages(self):
        self.client.get("/api/payment/packages/", name="GET packages")

    @task(2)
    def browse_listeners(self):
        self.client.get(f"/api/payment/listeners/?page={random.randint(1, 3)}", headers=self.auth, name="GET listeners")

    @task(1)
    def my_bookings(self):
        self.client.get("/api/payment/bookings/", headers=self.auth, name="GET bookings")

    @task(4)
    def book_pay_confirm(self):
        near = random.random() < SESSION_FRACTION
        if near:
            listener = next(_listeners)
            scheduled_at = datetime.now(UTC) + timedelta(minutes=2, seconds=next(_near_slots) % 60)
        else:
            slot = next(_far_slots)
            listener = SEED["listeners"][slot % len(SEED["listeners"])]
            scheduled_at = SLOT_BASE + timedelta(hours=slot // len(SEED["listeners"]))
        started = time.perf_counter()
        with self.client.post(
            "/api/payment/bookings/create_booking/",
            json={
                "listener_id": listener["id"],
                "package_id": random.choice(SEED["package_ids"]),
                "scheduled_at": scheduled_at.isoformat(),
                "notes": "load test",
            },
            headers={**self.auth, "Idempotency-Key": f"load-{uuid.uuid4()}"},
            name="POST create_booking",
            catch_response=True,
        ) as response:
            if response.status_code not in (201, 202):
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            body = response.json()
        if response.status_code == 202:
            _flow("create_booking_answered_202", 0)
        booking_id = body["booking"]["id"]
        payment = body["payment"]
        if not payment.get("client_secret"):
            payment = self._poll(booking_id, "GET booking (until intent)", lambda b: b["payment"]["client_secret"])
            if payment is None:
                return
            payment = payment["payment"]
        if not self._confirm_on_stripe(payment):
            return
        paid = time.perf_counter()
        booking = self._poll(booking_id, "GET booking (until confirmed)", lambda b: b["status"] == "confirmed")
        if booking is None:
            _flow("payment_to_confirmed", time.perf_counter() - paid, TimeoutError("not confirmed in time"))
            return
        now = time.perf_counter()
        _flow("payment_to_confirmed", now - paid)
        _flow("book_to_confirmed", now - started)
        if near:
            sessions_to_run.put((booking_id, listener["token"]))
        elif random.random() < CANCEL_FRACTION:
            self.client.post(
                f"/api/payment/bookings/{booking_id}/cancel/",
                json={"reason": "load test: plans changed"},
                headers=self.auth,
                name="POST cancel",
            )

    def _confirm_on_stripe(self, payment: dict) -> bool:
        """What stripe.confirmCardPayment sends: a form-encoded confirm with the publishable key."""
        intent_id = payment["client_secret"].split("_secret_")[0]
        form = {
            "key": SEED["publishable_key"],
            "client_secret": payment["client_secret"],
            "use_stripe_sdk": "true",
            "payment_method_data[type]": "card",
            **{f"payment_method_data[card][{name}]": value for name, value in CARD.items()},
        }
        with self.client.post(
            f"{self.emulator}/v1/payment_intents/{intent_id}/confirm",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            name="POST stripe.js confirm (emulator)",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or response.json().get("status") != "succeeded":
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return False
        return True

    def _poll(self, booking_id: int, name: str, done) -> dict | None:
        deadline = time.perf_counter() + CONFIRM_TIMEOUT_SECONDS
        while time.perf_counter() < deadline:
            response = self.client.get(f"/api/payment/bookings/{booking_id}/", headers=self.auth, name=name)
            if response.status_code == 200:
                booking = response.json()
                if done(booking):
                    return booking
            gevent.sleep(POLL_SECONDS)
        return None


class ListenerUser(FastHttpUser):
    """Runs the sessions talkers booked close to now: start, a short talk, complete (the load stack sets
    SESSION_MIN_RUN_PERCENT=0, so a session may complete as soon as it started)."""

    weight = 1
    wait_time = between(0.5, 1.5)

    @task
    def run_a_session(self):
        try:
            booking_id, token = sessions_to_run.get(timeout=2)
        except Empty:
            self.client.get("/api/payment/packages/", name="GET packages")
            return
        auth = _bearer(token)
        self.client.get("/api/payment/bookings/?status=confirmed", headers=auth, name="GET bookings (listener)")
        self.client.post(f"/api/payment/bookings/{booking_id}/start_session/", headers=auth, name="POST start_session")
        gevent.sleep(random.uniform(0.5, 1.5))
        self.client.post(
            f"/api/payment/bookings/{booking_id}/complete_session/", headers=auth, name="POST complete_session"
        )
