"""The emulator's browser side over plain HTTP: the Stripe.js stand-in, its challenge page, CORS, and
the publishable key in the parameters as Stripe.js sends it (the browser tests in web/ run the script)."""

import json
import urllib.error
import urllib.parse
import urllib.request

import stripe

PK = "pk_test_browser"


def call(emulator, method, path, data=None, headers=None):
    body = urllib.parse.urlencode(data).encode() if data is not None and method == "POST" else None
    request = urllib.request.Request(emulator.url + path, data=body, method=method, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_serves_the_stand_in_at_v3_and_v3_stripe_js(emulator):
    for path in ("/v3/", "/v3", "/v3/stripe.js"):
        status, headers, body = call(emulator, "GET", path)
        assert status == 200
        assert headers["Content-Type"].startswith("application/javascript")
        assert b"window.Stripe = Stripe" in body and b"confirmCardPayment" in body


def test_challenge_page_names_the_intent_and_offers_complete_and_fail(emulator):
    status, headers, body = call(emulator, "GET", "/v3/three_d_secure/pi_abc123")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'"pi_abc123"' in body
    assert b'id="test-source-authorize-3ds"' in body and b'id="test-source-fail-3ds"' in body


def test_preflight_allows_any_origin(emulator):
    status, headers, _ = call(
        emulator, "OPTIONS", "/v1/payment_intents/pi_x/confirm", headers={"Origin": "http://127.0.0.1:8000"}
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()


def _intent():
    # Stripe's default since 2023-08-16 (automatic payment methods, redirects allowed): Stripe.js confirms it
    return stripe.PaymentIntent.create(amount=2000, currency="usd")


def test_key_in_the_body_confirms_with_the_client_secret_and_answers_cors(emulator):
    pi = _intent()
    status, headers, body = call(
        emulator,
        "POST",
        f"/v1/payment_intents/{pi.id}/confirm",
        {
            "key": PK,
            "client_secret": pi.client_secret,
            "use_stripe_sdk": "true",
            "payment_method_data[type]": "card",
            "payment_method_data[card][number]": "4000000000003220",
        },
        headers={"Origin": "http://127.0.0.1:8000"},
    )
    confirmed = json.loads(body)
    assert status == 200, confirmed
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert confirmed["status"] == "requires_action"
    assert confirmed["next_action"]["type"] == "use_stripe_sdk"
    assert "customer" not in confirmed  # the publishable key's reduced view


def test_key_in_the_query_retrieves_and_a_wrong_secret_is_not_found(emulator):
    pi = _intent()
    ok = call(emulator, "GET", f"/v1/payment_intents/{pi.id}?key={PK}&client_secret={pi.client_secret}")
    wrong = call(emulator, "GET", f"/v1/payment_intents/{pi.id}?key={PK}&client_secret={pi.id}_secret_nope")
    assert ok[0] == 200 and json.loads(ok[2])["id"] == pi.id
    assert wrong[0] == 404


def test_a_publishable_key_in_the_body_still_cannot_call_secret_key_routes(emulator):
    status, _, body = call(emulator, "POST", "/v1/customers", {"key": PK, "email": "x@example.com"})
    assert status == 401
    assert "publishable API key" in json.loads(body)["error"]["message"]


def test_without_an_origin_answers_carry_no_cors_header(emulator):
    _, headers, _ = call(emulator, "GET", "/v1/balance", headers={"Authorization": "Bearer sk_test_x"})
    assert "Access-Control-Allow-Origin" not in headers
