"""Stripe's defaults and routing, one test per rule (issue 12): what passes here must pass on Stripe."""

import json

import pytest
import requests
import stripe

from stripe_emulator.testing import EmulatorProcess

from .conftest import Receiver


def _types(receiver):
    return [(e["type"], e.get("account")) for e in receiver.events()]


# --- 1. Connect events go to Connect endpoints -----------------------------------------------------


def test_connected_account_events_reach_only_connect_endpoints(emulator, onboarded_account):
    platform, connect = Receiver(), Receiver()
    try:
        emulator.register_webhook(platform.url)
        emulator.register_webhook(connect.url, connect=True)
        acct = onboarded_account.id
        stripe.Account.modify(acct, metadata={"tier": "pro"})  # account.updated of a connected account
        stripe.Customer.create(email="platform@example.com")  # a platform event
        emulator.post("/_emulator/balance/topup", {"amount": 5000})
        stripe.Transfer.create(amount=1000, currency="usd", destination=acct)  # platform: transfer.created
        stripe.Payout.create(amount=500, currency="usd", stripe_account=acct)  # connected: payout.created
        assert emulator.flush_webhooks(timeout=20)
        assert ("account.updated", acct) in _types(connect) and ("payout.created", acct) in _types(connect)
        assert all(account == acct for _, account in _types(connect))
        assert ("customer.created", None) in _types(platform) and ("transfer.created", None) in _types(platform)
        assert all(account is None for _, account in _types(platform))
    finally:
        platform.close()
        connect.close()


def test_webhook_endpoint_created_with_connect_true_through_the_api(emulator, onboarded_account, receiver):
    we = stripe.WebhookEndpoint.create(url=receiver.url, enabled_events=["account.updated"], connect=True)
    stripe.Account.modify(onboarded_account.id, metadata={"a": "b"})
    assert emulator.flush_webhooks(timeout=20)
    events = receiver.events()
    assert [e["type"] for e in events] == ["account.updated"]
    stripe.Webhook.construct_event(
        receiver.requests[0]["body"].decode(), receiver.requests[0]["headers"]["Stripe-Signature"], we.secret
    )


def test_cli_connect_endpoint_gets_connected_events_and_survives_reset(receiver):
    with EmulatorProcess(
        quiet=True,
        time_scale=0.01,
        connect_webhook_url=receiver.url,
        connect_webhook_secret="whsec_cli_connect_secret",
    ) as emu:
        client = emu.stripe_client()
        emu.reset()
        client.v1.customers.create()  # platform event: not for a Connect endpoint
        acct = client.v1.accounts.create(params={"type": "express"})
        emu.post("/_emulator/accounts/%s/onboard" % acct.id)
        assert emu.flush_webhooks(timeout=20)
        assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["account.updated"]
        req = receiver.requests[0]
        stripe.Webhook.construct_event(
            req["body"].decode(), req["headers"]["Stripe-Signature"], "whsec_cli_connect_secret"
        )


# --- 9. request_log_url on errors, v0 in test-mode signatures --------------------------------------


def test_every_api_error_carries_its_request_log_url(emulator):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.retrieve("pi_missing")
    err = ei.value.json_body["error"]
    assert err["request_log_url"] == "https://dashboard.stripe.com/test/logs/%s" % ei.value.request_id
    r = requests.get(emulator.url + "/v1/nothing_here", headers={"Authorization": "Bearer sk_test_x"})
    assert r.status_code == 404 and r.json()["error"]["request_log_url"].endswith(r.headers["Request-Id"])
    r = requests.get(emulator.url + "/v1/customers")  # no key
    assert r.status_code == 401 and "request_log_url" in r.json()["error"]


def test_test_mode_signatures_carry_a_v0_that_is_not_the_endpoint_secrets(emulator, receiver):
    secret = emulator.register_webhook(receiver.url, ["customer.created"])
    stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=20)
    header = receiver.requests[0]["headers"]["Stripe-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    assert set(parts) == {"t", "v1", "v0"} and parts["v0"] != parts["v1"]
    stripe.Webhook.construct_event(receiver.requests[0]["body"].decode(), header, secret)
