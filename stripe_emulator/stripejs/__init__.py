"""The browser's side of the emulator: a Stripe.js stand-in at /v3/ and CORS on the API.

Stripe.js runs on the merchant's page and calls api.stripe.com cross-origin with the publishable key
in the form body (`key=pk_test_...`), so the API answers CORS preflights and sends
`Access-Control-Allow-Origin: *`. `BrowserFront` wraps the emulator application and adds exactly
that in front of its own request handling: it serves the stand-in (`stripe.js`) and its 3-D Secure
challenge page, moves a `key` parameter into the Authorization header the emulator reads, and
passes everything else through unchanged.
"""

import html
import pathlib
import re
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT_PATHS = ("/v3", "/v3/", "/v3/stripe.js")
CHALLENGE = re.compile(r"/v3/three_d_secure/(pi_[A-Za-z0-9]+)")

CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
    ("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, Stripe-Account, Stripe-Version"),
    ("Access-Control-Max-Age", "600"),
)


def _asset(name):
    # Read on every request: the files are small, and edits show up without a restart.
    return (HERE / name).read_bytes()


def _move_key_to_header(headers, params):
    """`key=pk_test_...` as Stripe.js sends it becomes the Bearer key; the other params stay in order."""
    pairs = urllib.parse.parse_qsl(params, keep_blank_values=True)
    keys = [v for k, v in pairs if k == "key"]
    if not keys:
        return headers, params
    headers = dict(headers, authorization="Bearer " + keys[0])
    return headers, urllib.parse.urlencode([(k, v) for k, v in pairs if k != "key"])


class BrowserFront:
    """The HTTP application the server runs: browser additions in front of the emulator `app`."""

    def __init__(self, app):
        self.app = app

    def handle(self, method, target, headers, body):
        path, _, qs = target.partition("?")
        if method in ("GET", "HEAD") and path in SCRIPT_PATHS:
            return 200, [("Content-Type", "application/javascript; charset=utf-8"), *CORS_HEADERS], _asset("stripe.js")
        match = CHALLENGE.fullmatch(path)
        if match and method in ("GET", "HEAD"):
            page = _asset("challenge.html").replace(b"{{payment_intent}}", html.escape(match.group(1)).encode())
            return 200, [("Content-Type", "text/html; charset=utf-8")], page
        if method == "OPTIONS":
            return 204, list(CORS_HEADERS), b""
        if path.startswith("/v1/") and "authorization" not in headers:
            if method == "POST" and "form-urlencoded" in headers.get("content-type", ""):
                headers, params = _move_key_to_header(headers, body.decode("utf-8", "replace"))
                body = params.encode()
            elif qs:
                headers, qs = _move_key_to_header(headers, qs)
                target = path + ("?" + qs if qs else "")
        result = self.app.handle(method, target, headers, body)
        if result is None or "origin" not in headers:
            return result
        status, response_headers, response_body = result
        return status, [*response_headers, *CORS_HEADERS[:1]], response_body
