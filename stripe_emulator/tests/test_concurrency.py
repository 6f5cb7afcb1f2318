import threading
import time

import requests
import stripe

from .conftest import API_KEY


def test_concurrent_payments_are_consistent(emulator):
    errors = []
    ids = []
    lock = threading.Lock()

    def worker(n):
        client = emulator.stripe_client(API_KEY)
        try:
            for i in range(15):
                pi = client.v1.payment_intents.create(
                    params={
                        "allowed_payment_method_types": ["card"],
                        "amount": 1000,
                        "currency": "usd",
                        "payment_method": "pm_card_visa",
                        "confirm": True,
                        "metadata": {"w": str(n), "i": str(i)},
                    }
                )
                with lock:
                    ids.append(pi.id)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(set(ids)) == 120
    listed = [p.id for p in stripe.PaymentIntent.list(limit=100).auto_paging_iter()]
    assert sorted(listed) == sorted(ids)
    # every charge nets 1000 - (29 + 30) = 941, pending until the funds delay has passed
    balance = stripe.Balance.retrieve()
    assert balance.pending[0].amount == 120 * 941 and balance.available[0].amount == 0


def test_same_idempotency_key_concurrently_creates_one_object(emulator):
    results = []

    def worker():
        r = requests.post(
            emulator.url + "/v1/customers",
            data={"email": "same@example.com"},
            headers={"Authorization": "Bearer " + API_KEY, "Idempotency-Key": "race-1"},
        )
        results.append((r.status_code, r.json().get("id")))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {s for s, _ in results} == {200}
    assert len({i for _, i in results}) == 1
    assert len(stripe.Customer.list().data) == 1


def test_transfer_group_lookup_is_indexed():
    """Listing transfers by transfer_group must not scan all transfers (in-process check)."""
    import json
    import urllib.parse

    from stripe_emulator.core import Emulator

    emu = Emulator({"quiet": True})
    auth = {"authorization": "Bearer " + API_KEY}

    def call(method, path, params=None):
        body = urllib.parse.urlencode(params or {}).encode()
        if method == "GET":
            status, _, out = emu.handle("GET", path + "?" + body.decode(), auth, b"")
        else:
            status, _, out = emu.handle("POST", path, auth, body)
        return status, json.loads(out)

    status, acct = call("POST", "/v1/accounts", {"type": "express"})
    with emu.lock:
        emu.onboard_account(acct["id"])
        emu.topup(10_000_000, "usd")
    for i in range(3000):
        status, _ = call(
            "POST",
            "/v1/transfers",
            {"amount": 100, "currency": "usd", "destination": acct["id"], "transfer_group": "g%d" % i},
        )
        assert status == 200

    class NoScan(list):
        def __iter__(self):
            raise AssertionError("full scan of all transfers")

        def __reversed__(self):
            raise AssertionError("full scan of all transfers")

    emu.order["transfer"] = NoScan(emu.order["transfer"])
    for i in (0, 1234, 2999):
        status, page = call("GET", "/v1/transfers", {"transfer_group": "g%d" % i})
        assert status == 200 and [t["transfer_group"] for t in page["data"]] == ["g%d" % i]
    status, page = call("GET", "/v1/transfers", {"transfer_group": "absent"})
    assert status == 200 and page["data"] == []
    t0 = time.perf_counter()
    for i in range(1000):
        call("GET", "/v1/transfers", {"transfer_group": "g%d" % i})
    assert time.perf_counter() - t0 < 20  # generous; ~0.1 ms each in practice
