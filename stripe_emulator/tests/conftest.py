import http.server
import json
import threading
import time

import pytest
import stripe

from stripe_emulator.testing import EmulatorProcess

API_KEY = "sk_test_emulator_tests"


@pytest.fixture(scope="session")
def emulator():
    """One emulator for the whole session, 100x faster timers."""
    with EmulatorProcess(time_scale=0.01, quiet=True, api_key=API_KEY) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _reset(request):
    """Reset emulator state (and the stripe module globals) before each test that uses it."""
    if "emulator" in request.fixturenames:
        emu = request.getfixturevalue("emulator")
        emu.reset()
        stripe.api_key = API_KEY
        stripe.api_base = emu.url
        stripe.connect_api_base = emu.url
        stripe.max_network_retries = 2
        stripe.default_http_client = None
    yield


@pytest.fixture
def client(emulator):
    return emulator.stripe_client(API_KEY)


@pytest.fixture
def onboarded_account(emulator):
    acct = stripe.Account.create(
        type="express", country="US", email="host@example.com", capabilities={"transfers": {"requested": True}}
    )
    emulator.post("/_emulator/accounts/%s/onboard" % acct.id)
    return stripe.Account.retrieve(acct.id)


class Receiver:
    """A tiny local webhook receiver that records every request."""

    def __init__(self):
        self.requests = []
        self.fail_first = 0  # answer 500 to the first N requests
        self.status_for = None  # optional callable(body_dict) -> status
        self.cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with receiver.cond:
                    idx = len(receiver.requests)
                    receiver.requests.append({"body": body, "headers": dict(self.headers), "at": time.time()})
                    receiver.cond.notify_all()
                status = 200
                if idx < receiver.fail_first:
                    status = 500
                elif receiver.status_for is not None:
                    status = receiver.status_for(json.loads(body))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the emulator gave up waiting (webhook timeout test)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/webhook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def events(self):
        with self.cond:
            return [json.loads(r["body"]) for r in self.requests]

    def wait_for(self, predicate, timeout=15):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def pytest_terminal_summary(terminalreporter):
    """Print the counts the conformance and shape checks record (`record_property("summary", ...)`), also
    under xdist, where a test's own output is not shown."""
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            lines.extend(value for name, value in getattr(report, "user_properties", ()) if name == "summary")
    if lines:
        terminalreporter.write_sep("-", "Stripe conformance")
        for line in lines:
            terminalreporter.write_line(line)
