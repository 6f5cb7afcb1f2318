"""Background work: a timer scheduler and the signed webhook deliverer.

Nothing here runs on the API request path except ``enqueue_event`` (which only
puts small tuples on a queue, and only when endpoints are registered).
"""

import collections
import hashlib
import heapq
import hmac
import http.client
import json
import threading
import time
import urllib.parse

# Stripe's test-mode deliveries also carry a v0 signature, made with a key the receiver does not have;
# clients must ignore it (the SDKs check v1 only), so it is here to catch those that do not.
TEST_MODE_V0_KEY = b"whsec_stripe_emulator_test_mode_v0"


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    mac = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    v0 = hmac.new(TEST_MODE_V0_KEY, signed, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s,v0=%s" % (timestamp, mac, v0)


class Work:
    """Counts outstanding background work so tests can wait for quiescence."""

    def __init__(self):
        self.cond = threading.Condition()
        self.outstanding = 0
        self.gen = 0

    def add(self):
        """Count one unit of work; returns the generation token to pass to done()."""
        with self.cond:
            self.outstanding += 1
            return self.gen

    def done(self, gen):
        with self.cond:
            if gen != self.gen:
                return  # work from before a reset: already forgotten
            self.outstanding -= 1
            if self.outstanding <= 0:
                self.outstanding = 0
                self.cond.notify_all()

    def reset(self):
        with self.cond:
            self.gen += 1
            self.outstanding = 0
            self.cond.notify_all()

    def wait_idle(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.outstanding > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True


class Scheduler:
    """Runs callables after a delay on one background thread."""

    def __init__(self, work):
        self.work = work
        self.heap = []
        self.cond = threading.Condition()
        self.seq = 0
        self.generation = 0
        t = threading.Thread(target=self._run, name="emulator-scheduler", daemon=True)
        t.start()

    def schedule(self, delay, fn, *args):
        with self.cond:
            self.seq += 1
            wgen = self.work.add()
            heapq.heappush(self.heap, (time.monotonic() + max(0.0, delay), self.seq, self.generation, wgen, fn, args))
            self.cond.notify()

    def clear(self):
        with self.cond:
            self.generation += 1
            n = len(self.heap)
            self.heap = []
            self.cond.notify()
        return n

    def _run(self):
        while True:
            with self.cond:
                while True:
                    if not self.heap:
                        self.cond.wait()
                        continue
                    due = self.heap[0][0]
                    now = time.monotonic()
                    if due <= now:
                        _, _, gen, wgen, fn, args = heapq.heappop(self.heap)
                        break
                    self.cond.wait(due - now)
                current = gen == self.generation
            try:
                if current:
                    fn(*args)
            except Exception as e:  # never kill the scheduler
                try:
                    import sys

                    sys.stderr.write("emulator scheduler task failed: %r\n" % (e,))
                except Exception:
                    pass
            finally:
                self.work.done(wgen)


class Deliverer:
    """Delivers events to webhook endpoints with retries and chaos."""

    def __init__(self, emu, workers=4):
        self.emu = emu
        self.work = emu.work
        self.scheduler = emu.scheduler
        self.cond = threading.Condition()
        self.queue = collections.deque()
        self.generation = 0
        self.held = {}  # endpoint id -> list of held (reordered) tasks
        self.log = collections.deque(maxlen=20000)
        self.log_lock = threading.Lock()
        for i in range(max(1, workers)):
            threading.Thread(target=self._worker, name="emulator-webhook-%d" % i, daemon=True).start()

    # -- queueing --------------------------------------------------------
    def clear(self):
        with self.cond:
            self.generation += 1
            self.queue.clear()
            self.held = {}
        with self.log_lock:
            self.log.clear()

    def _push(self, task):
        with self.cond:
            wgen = self.work.add()
            self.queue.append((task, wgen))
            self.cond.notify()

    def _push_later(self, delay, task):
        self.scheduler.schedule(delay, self._push_if_current, task)

    def _push_if_current(self, task):
        if task[4] == self.generation:
            self._push(task)

    def enqueue_event(self, event_id, endpoint_ids):
        """Called with the emulator state lock held; decides chaos up-front."""
        cfg = self.emu.config
        rng = self.emu.rng
        gen = self.generation
        for we_id in endpoint_ids:
            task = (event_id, we_id, 1, False, gen)
            copies = [task]
            if cfg["chaos_duplicate"] > 0 and rng.random() < cfg["chaos_duplicate"]:
                copies.append((event_id, we_id, 1, True, gen))
            for c in copies:
                if cfg["chaos_delay"] > 0 and rng.random() < cfg["chaos_delay"]:
                    self._push_later(rng.uniform(0, cfg["chaos_max_delay"]), c)
                    continue
                if cfg["chaos_reorder"] > 0:
                    with self.cond:
                        held = self.held.get(we_id)
                    if held:
                        # deliver this newer event first, then the held older one(s)
                        with self.cond:
                            older = self.held.pop(we_id, [])
                        self._push(c)
                        for o, hgen in older:
                            self._push(o)
                            self.work.done(hgen)  # the hold itself is finished
                        continue
                    if rng.random() < cfg["chaos_reorder"]:
                        hgen = self.work.add()  # a held task is outstanding work
                        with self.cond:
                            self.held.setdefault(we_id, []).append((c, hgen))
                        # never hold forever: release after a short while
                        self.scheduler.schedule(cfg["chaos_reorder_release"], self._release_held, we_id, c)
                        continue
                self._push(c)

    def _release_held(self, we_id, task):
        with self.cond:
            lst = self.held.get(we_id) or []
            entry = next((e for e in lst if e[0] == task), None)
            if entry is None:
                return
            lst.remove(entry)
            if not lst:
                self.held.pop(we_id, None)
        self._push(task)
        self.work.done(entry[1])

    # -- delivery --------------------------------------------------------
    def _worker(self):
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                task, wgen = self.queue.popleft()
            try:
                if task[4] == self.generation:
                    self._deliver(task)
            except Exception as e:
                try:
                    import sys

                    sys.stderr.write("emulator webhook worker error: %r\n" % (e,))
                except Exception:
                    pass
            finally:
                self.work.done(wgen)

    def _deliver(self, task):
        event_id, we_id, attempt, duplicate, gen = task
        emu = self.emu
        with emu.lock:
            evt = emu.objects.get(event_id)
            we = emu.objects.get(we_id)
            if evt is None or we is None or we.get("deleted") or we.get("status") != "enabled":
                return
            secret = emu.webhook_secrets.get(we_id)
            url = we["url"]
            if we.get("api_version"):  # rendered in the endpoint's version (the only one it may have)
                evt = dict(evt, api_version=we["api_version"])
            payload = json.dumps(evt, indent=2).encode("utf-8")
            cfg = emu.config
            timeout = cfg["webhook_timeout"]
            max_attempts = cfg["webhook_max_attempts"]
            time_scale = cfg["time_scale"]
            quiet = cfg["quiet"]
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign_payload(payload, secret, ts),
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
        }
        status = None
        err = None
        started = time.perf_counter()
        try:
            u = urllib.parse.urlsplit(url)
            cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
            conn = cls(u.hostname, u.port, timeout=timeout)
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            try:
                conn.request("POST", path, body=payload, headers=headers)
                resp = conn.getresponse()
                resp.read(65536)
                status = resp.status
            finally:
                conn.close()
        except Exception as e:
            err = "%s: %s" % (type(e).__name__, e)
        ok = status is not None and 200 <= status < 300
        entry = {
            "event_id": event_id,
            "event_type": evt.get("type"),
            "endpoint_id": we_id,
            "url": url,
            "attempt": attempt,
            "status_code": status,
            "error": err,
            "success": ok,
            "duplicate": duplicate,
            "at": time.time(),
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if gen != self.generation:
            return
        with self.log_lock:
            self.log.append(entry)
        if not quiet:
            emu.log_line(
                "webhook %s %s -> %s attempt %d %s"
                % (evt.get("type"), url, status if status is not None else "error", attempt, err or "")
            )
        if ok:
            if not duplicate:
                with emu.lock:
                    e2 = emu.objects.get(event_id)
                    if e2 is not None and e2.get("pending_webhooks", 0) > 0:
                        e2["pending_webhooks"] -= 1
            return
        if attempt < max_attempts:
            delay = min(emu.config["webhook_retry_base"] * (2 ** (attempt - 1)), 3 * 3600) * time_scale
            self._push_later(delay, (event_id, we_id, attempt + 1, duplicate, gen))

    def deliveries(self, event_id=None, endpoint_id=None):
        with self.log_lock:
            items = list(self.log)
        if event_id:
            items = [d for d in items if d["event_id"] == event_id]
        if endpoint_id:
            items = [d for d in items if d["endpoint_id"] == endpoint_id]
        return items
