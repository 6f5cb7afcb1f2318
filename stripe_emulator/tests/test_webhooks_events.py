import json
import time

import stripe

from stripe_emulator.testing import EmulatorProcess


def _pay(amount=2000):
    return stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=amount,
        currency="usd",
        payment_method="pm_card_visa",
        confirm=True,
    )


def test_signed_delivery_verified_with_construct_event(emulator, receiver):
    we = stripe.WebhookEndpoint.create(
        url=receiver.url, enabled_events=["payment_intent.succeeded", "charge.succeeded"]
    )
    assert we.secret.startswith("whsec_") and we.status == "enabled"
    assert "secret" not in stripe.WebhookEndpoint.retrieve(we.id)
    pi = _pay()
    assert emulator.flush_webhooks(timeout=20)
    assert receiver.wait_for(lambda reqs: len(reqs) >= 2)
    types = set()
    for req in receiver.requests:
        sig = req["headers"]["Stripe-Signature"]
        assert sig.startswith("t=") and ",v1=" in sig
        event = stripe.Webhook.construct_event(req["body"].decode(), sig, we.secret)
        types.add(event.type)
        assert event.api_version and event.livemode is False and event.object == "event"
        stored = stripe.Event.retrieve(event.id)
        assert stored.type == event.type and stored.pending_webhooks == 0
    assert types == {"payment_intent.succeeded", "charge.succeeded"}
    ev = [json.loads(r["body"]) for r in receiver.requests if b"payment_intent.succeeded" in r["body"]][0]
    assert ev["data"]["object"]["id"] == pi.id and ev["data"]["object"]["status"] == "succeeded"
    assert ev["request"]["idempotency_key"]  # the SDK always sends one on POST
    # a wrong secret does not verify
    try:
        stripe.Webhook.construct_event(
            receiver.requests[0]["body"].decode(), receiver.requests[0]["headers"]["Stripe-Signature"], "whsec_wrong"
        )
        raise AssertionError("signature should not verify")
    except stripe.SignatureVerificationError:
        pass


def test_retries_with_backoff_after_non_2xx(emulator, receiver):
    receiver.fail_first = 2
    secret = emulator.register_webhook(receiver.url, ["customer.created"])
    cus = stripe.Customer.create(email="r@example.com")
    assert emulator.flush_webhooks(timeout=30)
    log = [d for d in emulator.deliveries() if d["event_type"] == "customer.created"]
    assert [(d["attempt"], d["status_code"]) for d in log] == [(1, 500), (2, 500), (3, 200)]
    assert len(receiver.requests) == 3
    evt = stripe.Webhook.construct_event(
        receiver.requests[-1]["body"].decode(), receiver.requests[-1]["headers"]["Stripe-Signature"], secret
    )
    assert evt.data.object.id == cus.id


def test_gives_up_after_max_attempts(emulator, receiver):
    emulator.configure(webhook_max_attempts=2)
    receiver.status_for = lambda body: 503
    emulator.register_webhook(receiver.url, ["customer.created"])
    c = stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=30)
    assert len(receiver.requests) == 2
    evt = stripe.Event.list(type="customer.created").data[0]
    assert evt.data.object.id == c.id and evt.pending_webhooks == 1


def test_webhook_endpoint_crud_and_filtering(emulator, receiver):
    we = stripe.WebhookEndpoint.create(
        url=receiver.url, enabled_events=["*"], description="all", metadata={"env": "test"}
    )
    assert [w.id for w in stripe.WebhookEndpoint.list().data] == [we.id]
    we2 = stripe.WebhookEndpoint.modify(we.id, enabled_events=["refund.created"], disabled=True)
    assert we2.enabled_events == ["refund.created"] and we2.status == "disabled"
    stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=20)
    assert receiver.requests == []
    stripe.WebhookEndpoint.modify(we.id, disabled=False)
    pi = _pay()
    stripe.Refund.create(payment_intent=pi.id)
    assert emulator.flush_webhooks(timeout=20)
    assert [e["type"] for e in receiver.events()] == ["refund.created"]
    assert stripe.WebhookEndpoint.delete(we.id).deleted is True
    assert stripe.WebhookEndpoint.list().data == []


def test_events_list_filters_and_previous_attributes(emulator):
    t0 = int(time.time())
    c = stripe.Customer.create(email="a@example.com", metadata={"a": "1"})
    stripe.Customer.modify(c.id, email="b@example.com", metadata={"a": "2"})
    _pay()
    upd = stripe.Event.list(type="customer.updated").data
    assert len(upd) == 1
    prev = upd[0].data.previous_attributes
    assert prev.email == "a@example.com" and prev.metadata.a == "1"
    assert upd[0].data.object.email == "b@example.com"
    assert upd[0].request.id.startswith("req_")
    both = stripe.Event.list(types=["customer.created", "charge.succeeded"]).data
    assert sorted(e.type for e in both) == ["charge.succeeded", "customer.created"]
    assert emulator.flush_webhooks()
    assert len(stripe.Event.list(created={"gte": t0}).data) == 6  # with the capture's charge.updated
    assert stripe.Event.list(created={"gte": t0 + 3600}).data == []
    e = stripe.Event.retrieve(both[0].id)
    assert e.id.startswith("evt_") and e.type == both[0].type
    # snapshots do not change afterwards
    created = stripe.Event.list(type="customer.created").data[0]
    assert created.data.object.email == "a@example.com"


def test_cli_preregistered_endpoint_and_env_fallback(receiver):
    with EmulatorProcess(
        quiet=True, time_scale=0.01, webhook_url=receiver.url, webhook_secret="whsec_cli_secret"
    ) as emu:
        c = emu.stripe_client()
        c.v1.customers.create(params={"email": "cli@example.com"})
        assert emu.flush_webhooks(timeout=20)
        req = receiver.requests[0]
        evt = stripe.Webhook.construct_event(
            req["body"].decode(), req["headers"]["Stripe-Signature"], "whsec_cli_secret"
        )
        assert evt.type == "customer.created"
        emu.reset()  # the pre-registered endpoint survives a reset
        c.v1.customers.create()
        assert emu.flush_webhooks(timeout=20)
        assert len(receiver.requests) == 2
    with EmulatorProcess(
        quiet=True,
        env={"STRIPE_EMULATOR_WEBHOOK_URL": receiver.url, "STRIPE_EMULATOR_WEBHOOK_SECRET": "whsec_env_secret"},
    ) as emu:
        emu.stripe_client().v1.customers.create()
        assert emu.flush_webhooks(timeout=20)
        req = receiver.requests[-1]
        stripe.Webhook.construct_event(req["body"].decode(), req["headers"]["Stripe-Signature"], "whsec_env_secret")


def test_chaos_duplicates(receiver):
    with EmulatorProcess(quiet=True, time_scale=0.01, chaos_duplicate=1.0, seed=7) as emu:
        emu.register_webhook(receiver.url, ["customer.created"])
        cl = emu.stripe_client()
        ids = [cl.v1.customers.create().id for _ in range(3)]
        assert emu.flush_webhooks(timeout=20)
        got = [e["data"]["object"]["id"] for e in receiver.events()]
        assert sorted(got) == sorted(ids * 2)
        assert len({e["id"] for e in receiver.events()}) == 3


def test_chaos_reorder_and_delay(receiver):
    with EmulatorProcess(quiet=True, time_scale=0.01, chaos_reorder=1.0, seed=3, webhook_workers=1) as emu:
        emu.register_webhook(receiver.url, ["customer.created"])
        cl = emu.stripe_client()
        ids = [cl.v1.customers.create().id for _ in range(4)]
        assert emu.flush_webhooks(timeout=20)
        got = [e["data"]["object"]["id"] for e in receiver.events()]
        assert sorted(got) == sorted(ids)
        assert got != ids  # delivered out of order
        assert got == [ids[1], ids[0], ids[3], ids[2]]
    receiver.requests.clear()
    with EmulatorProcess(quiet=True, time_scale=0.01, chaos_delay=1.0, chaos_max_delay=0.3, seed=5) as emu:
        emu.register_webhook(receiver.url, ["customer.created"])
        cl = emu.stripe_client()
        ids = [cl.v1.customers.create().id for _ in range(5)]
        assert emu.flush_webhooks(timeout=20)
        assert sorted(e["data"]["object"]["id"] for e in receiver.events()) == sorted(ids)


def test_runtime_chaos_config(emulator, receiver):
    cfg = emulator.configure(chaos_duplicate=1.0, seed=1)
    assert cfg["chaos_duplicate"] == 1.0
    emulator.register_webhook(receiver.url, ["customer.created"])
    stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=20)
    assert len(receiver.requests) == 2
    assert emulator.get("/_emulator/config")["chaos_duplicate"] == 1.0
    emulator.reset()
    assert emulator.get("/_emulator/config")["chaos_duplicate"] == 0.0


def test_retry_after_receiver_timeout(emulator, receiver):
    emulator.configure(webhook_timeout=0.3)
    slow = {"n": 0}

    def status_for(body):
        slow["n"] += 1
        if slow["n"] == 1:
            time.sleep(1.0)  # longer than webhook_timeout: counts as a failed attempt
        return 200

    receiver.status_for = status_for
    emulator.register_webhook(receiver.url, ["customer.created"])
    stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=30)
    log = emulator.deliveries()
    assert log[0]["status_code"] is None and "timed out" in (log[0]["error"] or "").lower()
    assert log[-1]["success"] and log[-1]["attempt"] == 2


def test_reset_keeps_or_drops_webhook_endpoints(emulator, receiver):
    stripe.WebhookEndpoint.create(url=receiver.url, enabled_events=["*"])
    emulator.post("/_emulator/reset", {"keep_webhooks": True})
    assert len(stripe.WebhookEndpoint.list().data) == 1
    assert stripe.Customer.list().data == []
    emulator.reset()
    assert stripe.WebhookEndpoint.list().data == []
