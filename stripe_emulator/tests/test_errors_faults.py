import random
import time

import pytest
import requests
import stripe

from .conftest import API_KEY


def _err(exc):
    return exc.json_body["error"]


@pytest.mark.parametrize(
    "kwargs,code,param",
    [
        ({"amount": 2000, "currency": "usd", "foo": "bar"}, "parameter_unknown", "foo"),
        (
            {"amount": 2000, "currency": "usd", "transfer_data": {"nope": "x"}},
            "parameter_unknown",
            "transfer_data[nope]",
        ),
        ({"amount": "abc", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": "12.5", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"currency": "usd"}, "parameter_missing", "amount"),
        ({"amount": 2000}, "parameter_missing", "currency"),
        ({"amount": 0, "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": -100, "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": 10, "currency": "usd"}, "amount_too_small", "amount"),
        ({"amount": 2000, "currency": "xyz"}, None, "currency"),
        ({"amount": 2000, "currency": "usd", "customer": "cus_missing"}, "resource_missing", "customer"),
        ({"amount": 2000, "currency": "usd", "payment_method": "pm_missing"}, "resource_missing", "payment_method"),
        ({"amount": 2000, "currency": "usd", "capture_method": "sometimes"}, None, "capture_method"),
        ({"amount": 2000, "currency": "usd", "confirm": "maybe"}, None, "confirm"),
        ({"amount": 2000, "currency": "usd", "application_fee_amount": 100}, None, "application_fee_amount"),
    ],
)
def test_bad_payment_intent_requests(emulator, kwargs, code, param):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(allowed_payment_method_types=["card"], **kwargs)
    e = ei.value
    assert e.http_status == 400
    body = _err(e)
    assert body["type"] == "invalid_request_error" and body["message"]
    assert body.get("code") == code and body.get("param") == param


def test_unknown_ids_are_404_resource_missing(emulator):
    calls = [
        lambda: stripe.PaymentIntent.retrieve("pi_nope"),
        lambda: stripe.Charge.retrieve("ch_nope"),
        lambda: stripe.Refund.retrieve("re_nope"),
        lambda: stripe.Customer.retrieve("cus_nope"),
        lambda: stripe.Transfer.retrieve("tr_nope"),
        lambda: stripe.Dispute.retrieve("dp_nope"),
        lambda: stripe.Event.retrieve("evt_nope"),
        lambda: stripe.Payout.retrieve("po_nope"),
        lambda: stripe.Account.retrieve("acct_nope"),
        lambda: stripe.WebhookEndpoint.retrieve("we_nope"),
        lambda: stripe.BalanceTransaction.retrieve("txn_nope"),
        lambda: stripe.PaymentIntent.confirm("pi_nope"),
        lambda: stripe.PaymentMethod.retrieve("pm_nope"),
    ]
    for call in calls:
        with pytest.raises(stripe.InvalidRequestError) as ei:
            call()
        assert ei.value.http_status == 404
        assert ei.value.code == "resource_missing" and ei.value.param == "id"


def test_auth_errors(emulator):
    with pytest.raises(stripe.AuthenticationError) as ei:
        stripe.Customer.list(api_key="not_a_key")
    assert ei.value.http_status == 401
    r = requests.get(emulator.url + "/v1/customers")
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    r = requests.get(emulator.url + "/v1/customers", auth=(API_KEY, ""))  # basic auth like curl -u
    assert r.status_code == 200 and r.json()["object"] == "list"
    with pytest.raises(stripe.PermissionError) as ei:
        stripe.Balance.retrieve(stripe_account="acct_doesnotexist")
    assert ei.value.http_status == 403
    r = requests.get(emulator.url + "/v1/nothing_here", headers={"Authorization": "Bearer " + API_KEY})
    assert r.status_code == 404 and "Unrecognized request URL" in r.json()["error"]["message"]


def test_garbage_input_never_500(emulator):
    rng = random.Random(42)
    h = {"Authorization": "Bearer " + API_KEY}
    paths = [
        "/v1/payment_intents",
        "/v1/customers",
        "/v1/refunds",
        "/v1/transfers",
        "/v1/accounts",
        "/v1/account_links",
        "/v1/payouts",
        "/v1/webhook_endpoints",
        "/v1/payment_methods",
    ]
    pi = stripe.PaymentIntent.create(allowed_payment_method_types=["card"], amount=1000, currency="usd")
    paths += [
        "/v1/payment_intents/%s" % pi.id,
        "/v1/payment_intents/%s/confirm" % pi.id,
        "/v1/payment_intents/%s/capture" % pi.id,
        "/v1/payment_intents/%s/cancel" % pi.id,
    ]
    bodies = [
        "amount[]=1",
        "amount[a][b]=2",
        "metadata=x&metadata[a]=b",
        "a[=1",
        "expand=notalist",
        "expand[]=customer.nope",
        "amount=1e5&currency=usd",
        "currency[]=usd&amount=100",
        "limit=1000",
        "limit=abc",
        "starting_after=pi_nope",
        "created[gte]=x",
        "created[zz]=1",
        "%ff%fe=%ff",
        "amount=99999999999&currency=usd",
        "metadata[" + "k" * 60 + "]=v",
        "transfer_data=abc&amount=100&currency=usd",
        "capabilities[transfers]=yes&type=express",
        "enabled_events=*&url=notaurl",
        "type=card&card[number]=abc",
        "email=noatsign",
    ]
    statuses = set()
    for _ in range(150):
        path = rng.choice(paths)
        body = rng.choice(bodies)
        if rng.random() < 0.5:
            r = requests.post(
                emulator.url + path, data=body, headers=dict(h, **{"Content-Type": "application/x-www-form-urlencoded"})
            )
        else:
            r = requests.get(emulator.url + path + "?" + body, headers=h)
        statuses.add(r.status_code)
        assert r.status_code < 500, (path, body, r.text)
        if r.status_code >= 400:
            assert "error" in r.json() and r.json()["error"]["message"]
    assert statuses & {400, 402, 404}


def test_fault_500_uses_sdk_retries_and_idempotency(emulator):
    emulator.fault("500", count=1, path_prefix="/v1/payment_intents")
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=1000, currency="usd"
    )  # SDK retries with the same idempotency key
    assert pi.status == "requires_payment_method"
    assert len(stripe.PaymentIntent.list().data) == 1
    emulator.fault("500", count=5)
    client = emulator.stripe_client(max_network_retries=0)
    with pytest.raises(stripe.APIError) as ei:
        client.v1.customers.create()
    assert ei.value.http_status == 500
    emulator.clear_faults()
    assert client.v1.customers.create().id.startswith("cus_")


def test_fault_429_rate_limit(emulator):
    emulator.fault("429", count=1)
    with pytest.raises(stripe.RateLimitError) as ei:
        stripe.Customer.create()
    assert ei.value.http_status == 429 and _err(ei.value)["code"] == "rate_limit"
    # with Stripe-Should-Retry: true the SDK retries by itself
    emulator.fault("429", count=1, should_retry=True)
    assert stripe.Customer.create().id.startswith("cus_")
    assert len(stripe.Customer.list().data) == 1


def test_fault_hang_triggers_client_timeout(emulator):
    emulator.fault("hang", count=1, seconds=10)
    client = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": emulator.url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=0.5),
    )
    t0 = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.list()
    assert time.monotonic() - t0 < 8
    # one more hang, but now the SDK's retry on timeout gets through
    emulator.fault("hang", count=1, seconds=10)
    retrying = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": emulator.url},
        max_network_retries=1,
        http_client=stripe.RequestsClient(timeout=0.5),
    )
    assert retrying.v1.customers.list().object == "list"
    emulator.clear_faults()


def test_fault_helpers_validate(emulator):
    r = requests.post(emulator.url + "/_emulator/faults", json={"mode": "teapot"})
    assert r.status_code == 400
    assert requests.get(emulator.url + "/_emulator/health").json() == {"status": "ok"}
    r = requests.post(emulator.url + "/_emulator/config", json={"nope": 1})
    assert r.status_code == 400
    r = requests.post(emulator.url + "/_emulator/payment_intents/pi_nope/3ds", json={"outcome": "succeed"})
    assert r.status_code == 404
    r = requests.post(emulator.url + "/_emulator/reset", data="not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_fault_409_is_retried_by_the_sdk(emulator):
    emulator.fault("409", count=1, path_prefix="/v1/customers")
    assert stripe.Customer.create().id.startswith("cus_")
    emulator.fault("409", count=3, path_prefix="/v1/customers")
    client = emulator.stripe_client(max_network_retries=0)
    with pytest.raises(stripe.StripeError) as ei:
        client.v1.customers.create()
    assert ei.value.http_status == 409
    emulator.clear_faults()
