"""--state-file: the emulator's objects survive a restart; the pre-registered endpoint is the new one."""

import os
import signal

import stripe

from stripe_emulator.testing import EmulatorProcess


def _client(emulator):
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def test_objects_and_idempotency_survive_a_restart(tmp_path):
    state = tmp_path / "emulator-state.pickle"
    # given an emulator keeping its state in a file, with a customer and a Connect account
    with EmulatorProcess(quiet=True, state_file=str(state)) as first:
        client = _client(first)
        customer = client.v1.customers.create({"email": "talker@example.com"}, {"idempotency_key": "customer-1"})
        account = client.v1.accounts.create({"type": "express", "country": "US"})
    assert state.exists()
    # when a new emulator starts from the file
    with EmulatorProcess(quiet=True, state_file=str(state)) as second:
        client = _client(second)
        # then the objects are there, and a retried create answers the same object
        assert client.v1.customers.retrieve(customer.id).email == "talker@example.com"
        assert client.v1.accounts.retrieve(account.id).type == "express"
        again = client.v1.customers.create({"email": "talker@example.com"}, {"idempotency_key": "customer-1"})
        assert again.id == customer.id
        new = client.v1.customers.create({"email": "other@example.com"})
        assert new.id != customer.id


def test_a_killed_emulator_keeps_what_was_saved_before(tmp_path):
    state = tmp_path / "emulator-state.pickle"
    emulator = EmulatorProcess(quiet=True, state_file=str(state)).start()
    try:
        customer = _client(emulator).v1.customers.create({"email": "kept@example.com"})
        # the writer saves within its 2 s interval; a kill -9 then loses nothing older
        import time

        deadline = time.monotonic() + 10
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.kill(emulator.proc.pid, signal.SIGKILL)
        emulator.proc.wait()
        emulator.proc = None
    with EmulatorProcess(quiet=True, state_file=str(state)) as restarted:
        assert _client(restarted).v1.customers.retrieve(customer.id).email == "kept@example.com"


def test_the_preregistered_endpoint_is_replaced_by_the_new_one(tmp_path):
    state = tmp_path / "emulator-state.pickle"
    with EmulatorProcess(
        quiet=True, state_file=str(state), webhook_url="http://127.0.0.1:1/old", webhook_secret="whsec_old"
    ):
        pass
    with EmulatorProcess(
        quiet=True, state_file=str(state), webhook_url="http://127.0.0.1:1/new", webhook_secret="whsec_new"
    ) as emulator:
        urls = [endpoint.url for endpoint in _client(emulator).v1.webhook_endpoints.list().data]
    assert urls == ["http://127.0.0.1:1/new"]


def test_pending_funds_and_the_clock_survive_a_restart(tmp_path):
    state = tmp_path / "emulator-state.pickle"
    with EmulatorProcess(quiet=True, state_file=str(state)) as first:
        client = _client(first)
        client.v1.payment_intents.create(
            {
                "allowed_payment_method_types": ["card"],
                "amount": 10000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        first.advance_clock(86400)
    with EmulatorProcess(quiet=True, state_file=str(state)) as second:
        assert second.get("clock")["offset"] == 86400
        assert _client(second).v1.balance.retrieve().pending[0].amount == 9680
        # the restored pending funds are released when their day comes
        second.advance_clock(86400)
        assert _client(second).v1.balance.retrieve().available[0].amount == 9680
