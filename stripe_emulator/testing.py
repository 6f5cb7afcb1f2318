"""Run the Stripe emulator as a subprocess from tests.

    from stripe_emulator.testing import EmulatorProcess

    with EmulatorProcess(time_scale=0.01, quiet=True) as emu:
        import stripe
        stripe.api_key = emu.api_key            # any "sk_test_..." key
        stripe.api_base = emu.url               # global configuration, or:
        client = emu.stripe_client()            # StripeClient(api_key, base_addresses={...})
        secret = emu.register_webhook("http://127.0.0.1:8000/stripe/webhook")
        ...
        emu.flush_webhooks(timeout=10)
        emu.reset()

Only the standard library is used here (urllib), so the helper works without
``requests``; ``stripe_client()`` imports ``stripe`` lazily.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_API_KEY = "sk_test_emulator"

INHERIT_BLOCKLIST = (
    "STRIPE_EMULATOR_WEBHOOK_URL",
    "STRIPE_EMULATOR_WEBHOOK_SECRET",
    "STRIPE_EMULATOR_CONNECT_WEBHOOK_URL",
    "STRIPE_EMULATOR_CONNECT_WEBHOOK_SECRET",
    "STRIPE_EMULATOR_PORT",
    "STRIPE_EMULATOR_HOST",
    "STRIPE_EMULATOR_STATE_FILE",
    "STRIPE_EMULATOR_FUNDS_DELAY",
)


class EmulatorError(RuntimeError):
    pass


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _flag(name, value):
    if name == "funds_pending":
        # pending funds are the default; funds_pending=False asks for Stripe-unlike available funds
        return ["--funds-pending"] if value else ["--funds-available"]
    flag = "--" + name.replace("_", "-")
    if value is True:
        return [flag]
    if value is False or value is None:
        return []
    return [flag, str(value)]


class EmulatorProcess:
    """Launch ``python -m stripe_emulator`` on a free 127.0.0.1 port.

    Keyword arguments become CLI flags: ``time_scale=0.01`` -> ``--time-scale 0.01``,
    ``quiet=True`` -> ``--quiet``, ``chaos_duplicate=0.5``, ``webhook_url=...``,
    ``webhook_secret=...``, ``funds_pending=False`` (-> ``--funds-available``; funds are pending by
    default, as on Stripe), ``funds_delay=60``, ``seed=1``, ``webhook_workers=1``...
    ``port`` may be given to use a fixed port; ``python`` picks the interpreter;
    ``log_path`` sends the emulator's stdout/stderr to a file (default: inherit,
    or discard when quiet).
    """

    def __init__(
        self,
        port=None,
        host="127.0.0.1",
        python=None,
        startup_timeout=20.0,
        log_path=None,
        api_key=DEFAULT_API_KEY,
        env=None,
        **flags,
    ):
        self.host = host
        self.port = port
        self.python = python or sys.executable
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.api_key = api_key
        self.flags = flags
        self.env = env
        self.proc = None
        self._log_file = None

    # -- lifecycle -----------------------------------------------------------
    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def _command(self, port):
        cmd = [self.python, "-m", "stripe_emulator", "--host", self.host, "--port", str(port)]
        for k, v in self.flags.items():
            cmd.extend(_flag(k, v))
        return cmd

    def start(self):
        if self.proc is not None:
            return self
        fixed = self.port
        last_err = None
        for _ in range(1 if fixed else 3):
            port = fixed or free_port(self.host)
            env = dict(os.environ)
            # a developer's shell may export these for `make run`; a test emulator must not inherit them
            for name in INHERIT_BLOCKLIST:
                env.pop(name, None)
            env.update(self.env or {})
            env["PYTHONPATH"] = PACKAGE_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            env.setdefault("PYTHONUNBUFFERED", "1")
            if self.log_path:
                self._log_file = open(self.log_path, "ab")
                out = self._log_file
            elif self.flags.get("quiet"):
                out = subprocess.DEVNULL
            else:
                out = None
            self.proc = subprocess.Popen(
                self._command(port), env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=PACKAGE_PARENT
            )
            self.port = port
            try:
                self._wait_healthy()
                return self
            except EmulatorError as e:  # e.g. the port was taken between probe and bind
                last_err = e
                self._kill()
        self.port = fixed
        raise last_err

    def _wait_healthy(self):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmulatorError("stripe emulator exited with code %s during startup" % self.proc.returncode)
            try:
                with urllib.request.urlopen(self.url + "/_emulator/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError, ConnectionError):
                pass
            time.sleep(0.02)
        raise EmulatorError("stripe emulator did not become healthy within %.0fs" % self.startup_timeout)

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def stop(self):
        self._kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- helper API ----------------------------------------------------------
    def _request(self, method, path, payload=None, timeout=30):
        if not path.startswith("/"):
            path = "/" + path
        if not path.startswith("/_emulator/") and not path.startswith("/v1/"):
            path = "/_emulator" + path
        data = None
        headers = {}
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                detail = json.loads(body)
            except ValueError:
                detail = body.decode("utf-8", "replace")
            raise EmulatorError("%s %s -> %d: %s" % (method, path, e.code, detail))
        return json.loads(body) if body else None

    def get(self, path, timeout=30):
        """GET an /_emulator/ helper (the prefix is optional: ``get("webhooks/deliveries")``)."""
        return self._request("GET", path, timeout=timeout)

    def post(self, path, json=None, timeout=30):
        """POST JSON to an /_emulator/ helper."""
        return self._request("POST", path, json if json is not None else {}, timeout=timeout)

    def delete(self, path, timeout=30):
        return self._request("DELETE", path, timeout=timeout)

    def reset(self, keep_webhooks=False):
        return self.post("/_emulator/reset", {"keep_webhooks": keep_webhooks})

    def configure(self, **settings):
        return self.post("/_emulator/config", settings)

    def advance_clock(self, seconds):
        """Move emulated time on: pending funds whose available_on has come become available."""
        return self.post("/_emulator/clock/advance", {"seconds": int(seconds)})

    def settle_funds(self):
        """Make every pending fund available now (without moving the clock)."""
        return self.post("/_emulator/balance/settle")

    def register_webhook(self, url, enabled_events=("*",), secret=None, connect=False):
        """Register a webhook endpoint and return its signing secret (whsec_...).

        connect=True makes it a Connect endpoint: it receives the connected accounts' events (and
        only those), as on Stripe."""
        payload = {"url": url, "enabled_events": list(enabled_events)}
        if secret:
            payload["secret"] = secret
        if connect:
            payload["connect"] = True
        return self.post("/_emulator/webhooks/register", payload)["secret"]

    def flush_webhooks(self, timeout=10):
        """Wait until every queued delivery, retry and scheduled task has run. Returns True if drained."""
        req = urllib.request.Request(
            self.url + "/_emulator/webhooks/flush?timeout=%s" % timeout, data=b"", method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout + 10) as r:
                return json.loads(r.read()).get("drained", False)
        except urllib.error.HTTPError as e:
            if e.code == 504:
                return False
            raise

    def deliveries(self, event_id=None):
        q = "?" + urllib.parse.urlencode({"event_id": event_id}) if event_id else ""
        return self.get("/_emulator/webhooks/deliveries" + q)["data"]

    def fault(self, mode, count=1, path_prefix=None, **extra):
        payload = dict(extra, mode=str(mode), count=count)
        if path_prefix:
            payload["path_prefix"] = path_prefix
        return self.post("/_emulator/faults", payload)

    def clear_faults(self):
        return self.delete("/_emulator/faults")

    def stripe_client(self, api_key=None, **kwargs):
        """A ``stripe.StripeClient`` pointed at this emulator (all base addresses)."""
        import stripe

        base = {"api": self.url, "connect": self.url, "files": self.url}
        return stripe.StripeClient(api_key or self.api_key, base_addresses=base, **kwargs)

    def configure_stripe_module(self, stripe_module=None):
        """Point the global ``stripe`` module at this emulator."""
        if stripe_module is None:
            import stripe as stripe_module
        stripe_module.api_key = self.api_key
        stripe_module.api_base = self.url
        stripe_module.connect_api_base = self.url
        stripe_module.upload_api_base = self.url
        return stripe_module
