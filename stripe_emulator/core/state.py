"""Stores, indexes, balances, ids and time: the emulator's in-memory state."""

import base64
import collections
import heapq
import json
import os
import random
import threading
import time

from ..params import ApiError

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


def jcopy(o):
    """Deep copy of JSON-shaped data (the C-accelerated json round trip is the fastest stdlib way)."""
    if type(o) in (dict, list):
        return _loads(_dumps(o))
    return o


_B64_TO_ALNUM = bytes.maketrans(b"+/", b"Zq")


def rand(n=24):
    """n random characters from [A-Za-z0-9]."""
    raw = base64.b64encode(os.urandom((n * 3) // 4 + 3)).translate(_B64_TO_ALNUM)
    return raw[:n].decode("ascii")


def luhn_ok(number):
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def stripe_fee(amount):
    return int(round(amount * 0.029)) + 30


def empty_address():
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def address_from(d):
    a = empty_address()
    if isinstance(d, dict):
        for k in a:
            if k in d and isinstance(d[k], str):
                a[k] = d[k] or None
    return a


class Ctx:
    __slots__ = ("account", "publishable", "req_id", "idem", "base_url", "method", "path", "key", "api_version")

    def __init__(self):
        self.account = None
        self.publishable = False
        self.req_id = None
        self.idem = None
        self.base_url = ""
        self.method = "GET"
        self.path = ""
        self.key = None
        self.api_version = None  # the request's Stripe-Version header, if any


def not_found(kind, oid, param="id", status=404):
    return ApiError(status, "No such %s: '%s'" % (kind, oid), code="resource_missing", param=param)


class StateMixin:
    def _reset_state(self):
        self.objects = {}
        self.internal = {}
        self.owner = {}
        self.seqno = {}
        self.order = collections.defaultdict(list)
        self.idx = collections.defaultdict(list)
        self.balances = {}
        self.idem = {}
        self.webhook_secrets = {}
        self.endpoints = []
        self.counter = 0
        self.payout_fail_next = []
        self.payout_fail_accounts = {}
        # Emulated time is the real clock plus this offset (POST /_emulator/clock/advance moves it on).
        self.clock_offset = 0
        # (available_on, seq, txn id) of pending balance transactions, soonest first.
        self.pending_funds = []
        self.platform_account = self._platform_account()
        for url, secret, connect in self.preregistered:
            self._create_endpoint(
                url, ["*"], secret=secret, description="pre-registered from the command line", connect=connect
            )

    def reset(self, keep_webhooks=False, reset_config=True):
        self.hang_abort.set()
        with self.fault_lock:
            self.faults = []
        self.scheduler.clear()
        self.deliverer.clear()
        self.work.reset()
        with self.lock:
            kept = []
            if keep_webhooks:
                for we_id in self.endpoints:
                    we = self.objects.get(we_id)
                    if we and not we.get("deleted") and we.get("description") != "pre-registered from the command line":
                        kept.append((jcopy(we), self.webhook_secrets.get(we_id), self._endpoint_is_connect(we_id)))
            if reset_config:
                self.config = dict(self.base_config)
                self.rng = random.Random(self.config.get("seed"))
            self._reset_state()
            for we, secret, connect in kept:
                self._store("webhook_endpoint", we, None)
                self.webhook_secrets[we["id"]] = secret
                self.internal[we["id"]] = {"connect": connect}
                self.endpoints.append(we["id"])
        self.hang_abort = threading.Event()

    def log_line(self, line):
        if self.config.get("quiet"):
            return
        with self._log_lock:
            try:
                self.log.write(line + "\n")
                self.log.flush()
            except Exception:
                pass

    def _platform_account(self):
        acct = self._account_obj("acct_" + rand(16), "standard", "US", "platform@example.com", None, {})
        self._onboard_fields(acct)
        acct["controller"] = {"type": "account"}
        return acct

    def _now(self):
        return int(time.time()) + self.clock_offset

    def _store(self, type_, o, account, index=()):
        oid = o["id"]
        self.counter += 1
        self.objects[oid] = o
        self.owner[oid] = account
        self.seqno[oid] = self.counter
        self.order[type_].append(oid)
        for field in index:
            v = o.get(field)
            if v is not None:
                if isinstance(v, dict):
                    v = v.get("id")
                self.idx[(type_, field, v)].append(oid)
        return o

    def _index(self, type_, field, value, oid):
        if value is not None:
            lst = self.idx[(type_, field, value)]
            if oid not in lst:
                lst.append(oid)

    def _get(self, kind, type_, oid, ctx, param="id", status=404, allow_deleted=False):
        o = self.objects.get(oid) if isinstance(oid, str) else None
        if (
            o is None
            or o.get("object") != kind
            or (o.get("deleted") and not allow_deleted)
            or self.owner.get(oid) != (ctx.account if ctx else None)
        ):
            raise not_found(type_, oid, param, status)
        return o

    # ---------------------------------------------------------------- money
    def _bal(self, account, currency):
        b = self.balances.setdefault(account, {})
        c = b.get(currency)
        if c is None:
            c = b[currency] = {"available": 0, "pending": 0}
        return c

    def _txn(
        self,
        account,
        amount,
        currency,
        type_,
        source,
        fee=0,
        description=None,
        pending=False,
        reporting_category=None,
        fee_desc="Stripe processing fees",
        available_on=None,
    ):
        """A balance transaction, and its net on the account's balance. `pending=True` holds the funds
        until `available_on` (default: now + the `funds_delay` config) in emulated time."""
        now = self._now()
        net = amount - fee
        if pending and available_on is None:
            available_on = now + int(self.config.get("funds_delay", 0))
        status = "pending" if pending and available_on > now else "available"
        txn = {
            "id": "txn_" + rand(),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": available_on if status == "pending" else now,
            "created": now,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": (
                [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": fee_desc,
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else []
            ),
            "net": net,
            "reporting_category": reporting_category or type_,
            "source": source,
            "status": status,
            "type": type_,
            "balance_type": "payments",
        }
        self._store("balance_transaction", txn, account, index=("source", "type"))
        self._bal(account, currency)[status] += net
        if status == "pending":
            heapq.heappush(self.pending_funds, (available_on, self.counter, txn["id"]))
        return txn

    def _release_due_funds(self):
        """Make available every pending balance transaction whose `available_on` has come in emulated
        time, emitting `balance.available` once per account. Called before every API request under the
        lock, so the check is one comparison when nothing is due. Returns how many moved."""
        limit = self._now()
        heap = self.pending_funds
        if not heap or heap[0][0] > limit:
            return 0
        accounts = []
        moved = 0
        while heap and heap[0][0] <= limit:
            _, _, tid = heapq.heappop(heap)
            if self._make_available(tid):
                accounts.append(self.owner.get(tid))
                moved += 1
        for account in dict.fromkeys(accounts):
            self._emit("balance.available", self.balance_obj(account), None, account)
        return moved

    def _make_available(self, tid):
        t = self.objects.get(tid)
        if t is None or t["status"] != "pending":
            return False
        t["status"] = "available"
        b = self._bal(self.owner.get(tid), t["currency"])
        b["pending"] -= t["net"]
        b["available"] += t["net"]
        return True

    def _pending_funds_rebuild(self):
        """The heap from the stored transactions (it is not saved in snapshots: rebuilt on load)."""
        self.pending_funds = [
            (self.objects[tid]["available_on"], self.seqno.get(tid, 0), tid)
            for tid in self.order.get("balance_transaction", [])
            if self.objects[tid]["status"] == "pending"
        ]
        heapq.heapify(self.pending_funds)
