"""State, routing and resource logic of the Stripe emulator (standard library only)."""

import base64
import collections
import json
import os
import random
import string
import sys
import threading
import time
import traceback
import urllib.parse

from .params import (
    ANY,
    BOOL,
    INT,
    LIST_SPEC,
    META,
    STR,
    STRLIST,
    ApiError,
    decode_form,
    enum,
    invalid,
    obj,
    require,
    validate,
)
from .webhooks import Deliverer, Scheduler, Work

API_VERSION = "2026-10-28.endive"

DEFAULT_CONFIG = {
    "time_scale": 1.0,
    "funds_pending": False,
    "chaos_duplicate": 0.0,
    "chaos_reorder": 0.0,
    "chaos_delay": 0.0,
    "chaos_max_delay": 2.0,
    "chaos_reorder_release": 0.5,
    "webhook_max_attempts": 8,
    "webhook_retry_base": 10.0,  # seconds before the 2nd attempt (doubles), times time_scale
    "webhook_timeout": 10.0,
    "dispute_delay": 2.0,  # seconds (times time_scale) before a 0259 card's dispute opens
    "payout_delay": 2.0,  # seconds (times time_scale) before a payout is paid/failed
    "hang_seconds": 30.0,
    "quiet": False,
    "seed": None,
}

ALNUM = string.ascii_letters + string.digits

# minimum charge amounts (smallest currency unit)
CURRENCY_MIN = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "cad": 50,
    "aud": 50,
    "jpy": 50,
    "chf": 50,
    "nzd": 50,
    "sek": 300,
    "nok": 300,
    "dkk": 250,
    "hkd": 400,
    "sgd": 50,
    "mxn": 1000,
    "inr": 50,
    "brl": 50,
    "pln": 200,
    "czk": 1500,
    "huf": 17500,
    "ron": 200,
    "bgn": 100,
    "thb": 1000,
    "myr": 200,
    "krw": 100,
    "aed": 200,
    "zar": 800,
    "ils": 200,
}
ZERO_DECIMAL = {"jpy", "krw"}
COUNTRY_CURRENCY = {
    "US": "usd",
    "GB": "gbp",
    "CA": "cad",
    "AU": "aud",
    "JP": "jpy",
    "FR": "eur",
    "DE": "eur",
    "ES": "eur",
    "IT": "eur",
    "NL": "eur",
    "IE": "eur",
    "BE": "eur",
    "AT": "eur",
    "FI": "eur",
    "PT": "eur",
    "CH": "chf",
    "NZ": "nzd",
    "SE": "sek",
    "NO": "nok",
    "DK": "dkk",
    "SG": "sgd",
    "HK": "hkd",
    "MX": "mxn",
    "IN": "inr",
    "BR": "brl",
    "PL": "pln",
}

# card number -> (brand, behaviour, decline_code or None, funding)
CARDS = {
    "4242424242424242": ("visa", "success", None, "credit"),
    "4000056655665556": ("visa", "success", None, "debit"),
    "5555555555554444": ("mastercard", "success", None, "credit"),
    "2223003122003222": ("mastercard", "success", None, "credit"),
    "378282246310005": ("amex", "success", None, "credit"),
    "4000000000000077": ("visa", "success_available", None, "credit"),
    "4000000000000002": ("visa", "decline", "generic_decline", "credit"),
    "4000000000009995": ("visa", "decline", "insufficient_funds", "credit"),
    "4000000000009987": ("visa", "decline", "lost_card", "credit"),
    "4000000000009979": ("visa", "decline", "stolen_card", "credit"),
    "4000000000000069": ("visa", "decline", "expired_card", "credit"),
    "4000000000000127": ("visa", "decline", "incorrect_cvc", "credit"),
    "4000000000000119": ("visa", "decline", "processing_error", "credit"),
    "4100000000000019": ("visa", "decline", "fraudulent", "credit"),
    "4000002500003155": ("visa", "3ds", None, "credit"),
    "4000002760003184": ("visa", "3ds", None, "credit"),
    "4000000000003220": ("visa", "3ds", None, "credit"),
    "4000000000000259": ("visa", "dispute", None, "credit"),
}
PM_TOKENS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_bypassPending": "4000000000000077",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequiredOnSetup": "4000002760003184",
    "pm_card_createDispute": "4000000000000259",
}
CARD_TOKENS = {
    "tok_visa": "4242424242424242",
    "tok_mastercard": "5555555555554444",
    "tok_amex": "378282246310005",
    "tok_chargeDeclined": "4000000000000002",
    "tok_chargeDeclinedInsufficientFunds": "4000000000009995",
    "tok_createDispute": "4000000000000259",
    "tok_bypassPending": "4000000000000077",
}

DECLINES = {
    "generic_decline": ("card_declined", "Your card was declined."),
    "insufficient_funds": ("card_declined", "Your card has insufficient funds."),
    "lost_card": ("card_declined", "Your card was declined."),
    "stolen_card": ("card_declined", "Your card was declined."),
    "fraudulent": ("card_declined", "Your card was declined."),
    "expired_card": ("expired_card", "Your card has expired."),
    "incorrect_cvc": ("incorrect_cvc", "Your card's security code is incorrect."),
    "processing_error": (
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}

EVIDENCE_FIELDS = [
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
]

INITIAL_REQUIREMENTS = [
    "business_profile.mcc",
    "business_profile.url",
    "external_account",
    "individual.dob.day",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]

PREFIX_TYPE = {
    "pi": "payment_intent",
    "ch": "charge",
    "re": "refund",
    "cus": "customer",
    "pm": "payment_method",
    "acct": "account",
    "tr": "transfer",
    "trr": "transfer_reversal",
    "dp": "dispute",
    "evt": "event",
    "po": "payout",
    "we": "webhook_endpoint",
    "txn": "balance_transaction",
}


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
    __slots__ = ("account", "publishable", "req_id", "idem", "base_url", "method", "path", "key")

    def __init__(self):
        self.account = None
        self.publishable = False
        self.req_id = None
        self.idem = None
        self.base_url = ""
        self.method = "GET"
        self.path = ""
        self.key = None


def not_found(kind, oid, param="id", status=404):
    return ApiError(status, "No such %s: '%s'" % (kind, oid), code="resource_missing", param=param)


class Emulator:
    def __init__(self, config=None, webhook_workers=4, log=None):
        cfg = dict(DEFAULT_CONFIG)
        cfg.update(config or {})
        self.base_config = dict(cfg)
        self.config = cfg
        self.lock = threading.RLock()
        self.log = log or sys.stderr
        self._log_lock = threading.Lock()
        self.rng = random.Random(cfg.get("seed"))
        self.work = Work()
        self.scheduler = Scheduler(self.work)
        self.deliverer = Deliverer(self, workers=webhook_workers)
        self.faults = []
        self.fault_lock = threading.Lock()
        self.hang_abort = threading.Event()
        self.preregistered = []  # (url, secret) from the CLI / env
        self._build_routes()
        self._reset_state()

    # ------------------------------------------------------------------ state
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
        self.platform_account = self._platform_account()
        for url, secret in self.preregistered:
            self._create_endpoint(url, ["*"], secret=secret, description="pre-registered from the command line")

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
                        kept.append((jcopy(we), self.webhook_secrets.get(we_id)))
            if reset_config:
                self.config = dict(self.base_config)
                self.rng = random.Random(self.config.get("seed"))
            self._reset_state()
            for we, secret in kept:
                self._store("webhook_endpoint", we, None)
                self.webhook_secrets[we["id"]] = secret
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
        return int(time.time())

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
    ):
        now = self._now()
        net = amount - fee
        status = "pending" if pending else "available"
        txn = {
            "id": "txn_" + rand(),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": now + (2 * 86400 if pending else 0),
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
        return txn

    # --------------------------------------------------------------- events
    def _out(self, o):
        if o.get("deleted"):
            return {"id": o["id"], "object": o["object"], "deleted": True}
        kind = o.get("object")
        if kind == "charge":
            refunds = [self.objects[r] for r in reversed(self.idx.get(("refund", "charge", o["id"]), ()))]
            o = dict(o)
            o["refunds"] = {
                "object": "list",
                "data": refunds[:10],
                "has_more": len(refunds) > 10,
                "total_count": len(refunds),
                "url": "/v1/charges/%s/refunds" % o["id"],
            }
        elif kind == "transfer":
            revs = [self.objects[r] for r in reversed(self.idx.get(("transfer_reversal", "transfer", o["id"]), ()))]
            o = dict(o)
            o["reversals"] = {
                "object": "list",
                "data": revs[:10],
                "has_more": len(revs) > 10,
                "total_count": len(revs),
                "url": "/v1/transfers/%s/reversals" % o["id"],
            }
        return o

    def _emit(self, type_, o, ctx=None, account=None, previous=None):
        data = {"object": jcopy(self._out(o))}
        if previous is not None:
            data["previous_attributes"] = previous
        matched = []
        for we_id in self.endpoints:
            we = self.objects.get(we_id)
            if we is None or we.get("deleted") or we["status"] != "enabled":
                continue
            ev = we["enabled_events"]
            if "*" in ev or type_ in ev:
                matched.append(we_id)
        evt = {
            "id": "evt_" + rand(),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(matched),
            "request": {"id": ctx.req_id if ctx else None, "idempotency_key": ctx.idem if ctx else None},
            "type": type_,
        }
        if account:
            evt["account"] = account
        self._store("event", evt, account, index=("type",))
        if matched:
            self.deliverer.enqueue_event(evt["id"], matched)
        return evt

    @staticmethod
    def _diff(before, after):
        prev = {}
        for k, v in before.items():
            if after.get(k) != v:
                if isinstance(v, dict) and isinstance(after.get(k), dict) and k == "metadata":
                    sub = {}
                    nv = after[k]
                    for mk in set(v) | set(nv):
                        if v.get(mk) != nv.get(mk):
                            sub[mk] = v.get(mk, "")
                    prev[k] = sub
                else:
                    prev[k] = jcopy(v)
        return prev

    @staticmethod
    def _apply_metadata(o, md):
        if md is None:
            return
        if md == "":
            o["metadata"] = {}
            return
        new = dict(o.get("metadata") or {})
        for k, v in md.items():
            if v == "":
                new.pop(k, None)
            else:
                new[k] = v
        o["metadata"] = new

    # ---------------------------------------------------------------- lists
    @staticmethod
    def _pop_str(q, name):
        v = q.pop(name, None)
        if v is None or v == "":
            return None
        if name == "types":
            if isinstance(v, str):
                return [v]
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
            raise invalid("Invalid array", param=name)
        if not isinstance(v, str):
            raise invalid("Invalid string: %s must be a string" % name, param=name)
        return v

    def _list(self, ctx, q, type_, url, index=None, pred=None, owner_check=True):
        p = validate(q, LIST_SPEC)
        limit = p.get("limit", 10)
        if limit < 1 or limit > 100:
            raise ApiError(
                400,
                "This value must be between 1 and 100 (it currently is %d)." % limit,
                code="parameter_invalid_integer",
                param="limit",
            )
        if index is not None:
            cand = self.idx.get((type_,) + index, [])
        else:
            cand = self.order[type_]
        created = p.get("created")
        sa, eb = p.get("starting_after"), p.get("ending_before")
        acct = ctx.account

        def ok(oid):
            o = self.objects.get(oid)
            if o is None or o.get("deleted"):
                return None
            if owner_check and self.owner.get(oid) != acct:
                return None
            if created:
                c = o.get("created", 0)
                if "eq" in created and c != created["eq"]:
                    return None
                if "gt" in created and not c > created["gt"]:
                    return None
                if "gte" in created and not c >= created["gte"]:
                    return None
                if "lt" in created and not c < created["lt"]:
                    return None
                if "lte" in created and not c <= created["lte"]:
                    return None
            if pred is not None and not pred(o):
                return None
            return o

        out = []
        if eb:
            if eb not in self.seqno:
                raise not_found(type_, eb, "ending_before", 400)
            pivot = self.seqno[eb]
            for oid in cand:
                if self.seqno[oid] <= pivot:
                    continue
                o = ok(oid)
                if o is not None:
                    out.append(o)
                    if len(out) > limit:
                        break
            has_more = len(out) > limit
            out = list(reversed(out[:limit]))
        else:
            pivot = None
            if sa:
                if sa not in self.seqno:
                    raise not_found(type_, sa, "starting_after", 400)
                pivot = self.seqno[sa]
            for oid in reversed(cand):
                if pivot is not None and self.seqno[oid] >= pivot:
                    continue
                o = ok(oid)
                if o is not None:
                    out.append(o)
                    if len(out) > limit:
                        break
            has_more = len(out) > limit
            out = out[:limit]
        return {"object": "list", "data": [self._out(o) for o in out], "has_more": has_more, "url": url}

    # ---------------------------------------------------------------- expand
    def _expand(self, o, paths):
        for path in paths:
            o = self._expand_path(o, path.split("."), path, 0)
        return o

    def _expand_path(self, o, segs, full, depth):
        if not segs:
            return o
        if depth > 4:
            raise invalid("You cannot expand more than 4 levels of a property (%s)." % full, param="expand")
        if isinstance(o, dict) and o.get("object") == "list" and segs[0] == "data" and "data" in o:
            new = dict(o)
            new["data"] = [self._expand_path(x, segs[1:], full, depth + 1) for x in o["data"]]
            return new
        key = segs[0]
        if not isinstance(o, dict) or key not in o:
            raise invalid("This property cannot be expanded (%s)." % full, param="expand")
        v = o[key]
        if v is None:
            return o
        if isinstance(v, str):
            target = self.objects.get(v)
            if target is None:
                if v == self.platform_account["id"]:
                    target = self.platform_account
                elif v.split("_", 1)[0] in PREFIX_TYPE:
                    return o
                else:
                    raise invalid("This property cannot be expanded (%s)." % full, param="expand")
            v = self._out(target)
        elif isinstance(v, list):
            if len(segs) == 1 and all(isinstance(x, str) for x in v):
                v = [self._out(self.objects[x]) if x in self.objects else x for x in v]
                new = dict(o)
                new[key] = v
                return new
            if len(segs) == 1:
                return o
            raise invalid("This property cannot be expanded (%s)." % full, param="expand")
        elif not isinstance(v, dict):
            raise invalid("This property cannot be expanded (%s)." % full, param="expand")
        new = dict(o)
        new[key] = self._expand_path(v, segs[1:], full, depth + 1)
        return new

    # ---------------------------------------------------------------- routing
    def _build_routes(self):
        R = {}

        def add(method, res, has_id, action, has_id2, fn, pk=False):
            R[(method, res, has_id, action, has_id2)] = (fn, pk)

        add("POST", "customers", 0, None, 0, self.customer_create)
        add("GET", "customers", 0, None, 0, self.customer_list)
        add("GET", "customers", 1, None, 0, self.customer_retrieve)
        add("POST", "customers", 1, None, 0, self.customer_update)
        add("DELETE", "customers", 1, None, 0, self.customer_delete)
        add("GET", "customers", 1, "payment_methods", 0, self.customer_payment_methods)
        add("POST", "payment_methods", 0, None, 0, self.pm_create)
        add("GET", "payment_methods", 0, None, 0, self.pm_list)
        add("GET", "payment_methods", 1, None, 0, self.pm_retrieve)
        add("POST", "payment_methods", 1, None, 0, self.pm_update)
        add("POST", "payment_methods", 1, "attach", 0, self.pm_attach)
        add("POST", "payment_methods", 1, "detach", 0, self.pm_detach)
        add("POST", "payment_intents", 0, None, 0, self.pi_create)
        add("GET", "payment_intents", 0, None, 0, self.pi_list)
        add("GET", "payment_intents", 1, None, 0, self.pi_retrieve, pk=True)
        add("POST", "payment_intents", 1, None, 0, self.pi_update)
        add("POST", "payment_intents", 1, "confirm", 0, self.pi_confirm, pk=True)
        add("POST", "payment_intents", 1, "cancel", 0, self.pi_cancel)
        add("POST", "payment_intents", 1, "capture", 0, self.pi_capture)
        add("GET", "charges", 0, None, 0, self.charge_list)
        add("GET", "charges", 1, None, 0, self.charge_retrieve)
        add("POST", "charges", 1, None, 0, self.charge_update)
        add("GET", "charges", 1, "refunds", 0, self.charge_refunds)
        add("POST", "refunds", 0, None, 0, self.refund_create)
        add("GET", "refunds", 0, None, 0, self.refund_list)
        add("GET", "refunds", 1, None, 0, self.refund_retrieve)
        add("POST", "refunds", 1, None, 0, self.refund_update)
        add("GET", "disputes", 0, None, 0, self.dispute_list)
        add("GET", "disputes", 1, None, 0, self.dispute_retrieve)
        add("POST", "disputes", 1, None, 0, self.dispute_update)
        add("POST", "disputes", 1, "close", 0, self.dispute_close)
        add("POST", "accounts", 0, None, 0, self.account_create)
        add("GET", "accounts", 0, None, 0, self.account_list)
        add("GET", "accounts", 1, None, 0, self.account_retrieve)
        add("POST", "accounts", 1, None, 0, self.account_update)
        add("DELETE", "accounts", 1, None, 0, self.account_delete)
        add("GET", "account", 0, None, 0, self.account_self)
        add("POST", "account_links", 0, None, 0, self.account_link_create)
        add("POST", "transfers", 0, None, 0, self.transfer_create)
        add("GET", "transfers", 0, None, 0, self.transfer_list)
        add("GET", "transfers", 1, None, 0, self.transfer_retrieve)
        add("POST", "transfers", 1, None, 0, self.transfer_update)
        add("POST", "transfers", 1, "reversals", 0, self.reversal_create)
        add("GET", "transfers", 1, "reversals", 0, self.reversal_list)
        add("GET", "transfers", 1, "reversals", 1, self.reversal_retrieve)
        add("POST", "transfers", 1, "reversals", 1, self.reversal_update)
        add("GET", "balance", 0, None, 0, self.balance_retrieve)
        add("GET", "balance_transactions", 0, None, 0, self.txn_list)
        add("GET", "balance_transactions", 1, None, 0, self.txn_retrieve)
        add("POST", "payouts", 0, None, 0, self.payout_create)
        add("GET", "payouts", 0, None, 0, self.payout_list)
        add("GET", "payouts", 1, None, 0, self.payout_retrieve)
        add("POST", "payouts", 1, None, 0, self.payout_update)
        add("POST", "payouts", 1, "cancel", 0, self.payout_cancel)
        add("GET", "events", 0, None, 0, self.event_list)
        add("GET", "events", 1, None, 0, self.event_retrieve)
        add("POST", "webhook_endpoints", 0, None, 0, self.we_create)
        add("GET", "webhook_endpoints", 0, None, 0, self.we_list)
        add("GET", "webhook_endpoints", 1, None, 0, self.we_retrieve)
        add("POST", "webhook_endpoints", 1, None, 0, self.we_update)
        add("DELETE", "webhook_endpoints", 1, None, 0, self.we_delete)
        self.routes = R

    def handle(self, method, target, headers, body):
        path, _, qs = target.partition("?")
        if path.startswith("/v1/"):
            return self._handle_api(method, path, qs, headers, body)
        if path.startswith("/_emulator/"):
            from .helpers import handle_helper

            try:
                return handle_helper(self, method, path, qs, headers, body)
            except Exception as e:  # pragma: no cover - defensive
                traceback.print_exc()
                return self._json(500, {"error": {"type": "api_error", "message": "emulator helper failed: %r" % e}})
        if path in ("/", "/health", "/healthz"):
            return self._json(200, {"status": "ok", "emulator": "stripe_emulator", "api_version": API_VERSION})
        return self._json(
            404,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Unrecognized request URL (%s: %s)." % (method, path),
                }
            },
        )

    @staticmethod
    def _json(status, payload, extra_headers=(), req_id=None):
        body = json.dumps(payload).encode("utf-8")
        h = [("Content-Type", "application/json"), ("Stripe-Version", API_VERSION)]
        if req_id:
            h.append(("Request-Id", req_id))
        h.extend(extra_headers)
        return status, h, body

    def _take_fault(self, path):
        if not self.faults:
            return None
        with self.fault_lock:
            for f in self.faults:
                if f["remaining"] > 0 and (not f.get("path_prefix") or path.startswith(f["path_prefix"])):
                    f["remaining"] -= 1
                    fault = dict(f)
                    self.faults = [x for x in self.faults if x["remaining"] > 0]
                    return fault
        return None

    def _handle_api(self, method, path, qs, headers, body):
        req_id = "req_" + rand(14)
        fault = self._take_fault(path)
        if fault is not None:
            mode = fault["mode"]
            if mode == "hang":
                self.hang_abort.wait(fault.get("seconds") or self.config["hang_seconds"])
                return None
            if mode == "429":
                extra = [("Stripe-Should-Retry", "true")] if fault.get("should_retry") else []
                return self._json(
                    429,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "rate_limit",
                            "message": "Too many requests hit the API too quickly. "
                            "We recommend an exponential backoff of your requests.",
                        }
                    },
                    extra,
                    req_id,
                )
            status = int(mode) if str(mode).isdigit() else 500
            extra = []
            if fault.get("should_retry") is not None:
                extra = [("Stripe-Should-Retry", "true" if fault["should_retry"] else "false")]
            if status == 409:
                return self._json(
                    409,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "lock_timeout",
                            "message": "This object cannot be accessed right now because another API request or Stripe "
                            "process is currently accessing it (injected fault).",
                        }
                    },
                    extra,
                    req_id,
                )
            return self._json(
                status,
                {
                    "error": {
                        "type": "api_error",
                        "message": "An unknown error occurred (injected fault).",
                    }
                },
                extra,
                req_id,
            )

        ctx = Ctx()
        ctx.req_id = req_id
        ctx.method = method
        ctx.path = path
        # --- auth
        auth = headers.get("authorization", "")
        key = None
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        elif auth[:6].lower() == "basic ":
            try:
                key = base64.b64decode(auth[6:].strip()).decode().split(":", 1)[0]
            except Exception:
                key = None
        if not key:
            return self._json(
                401,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "You did not provide an API key. "
                        "You need to provide your API key in the Authorization "
                        "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                    }
                },
                req_id=req_id,
            )
        if key.startswith(("sk_test_", "rk_test_")):
            ctx.publishable = False
        elif key.startswith("pk_test_"):
            ctx.publishable = True
        else:
            masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key
            return self._json(
                401,
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: %s" % masked}},
                req_id=req_id,
            )
        ctx.key = key
        acct = headers.get("stripe-account")
        host = headers.get("host", "127.0.0.1")
        ctx.base_url = "http://" + host
        ctx.idem = headers.get("idempotency-key") or None

        parts = path.split("/")
        # ['', 'v1', res, id?, action?, id2?]
        n = len(parts)
        res = parts[2] if n > 2 else ""
        oid = parts[3] if n > 3 and parts[3] else None
        action = parts[4] if n > 4 and parts[4] else None
        oid2 = parts[5] if n > 5 and parts[5] else None
        if n > 6:
            action = "\x00"
        route = self.routes.get((method, res, 1 if oid else 0, action, 1 if oid2 else 0))
        if route is None:
            return self._json(
                404,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Unrecognized request URL (%s: %s). Please see "
                        "https://stripe.com/docs or we can help at "
                        "https://support.stripe.com/." % (method, path),
                    }
                },
                req_id=req_id,
            )
        fn, pk_ok = route
        if ctx.publishable and not pk_ok:
            return self._json(
                401,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "This API call cannot be made with a publishable API key. "
                        "Please use a secret API key. "
                        "You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
                    }
                },
                req_id=req_id,
            )

        idem_slot = None
        raw_params = body if method == "POST" else qs
        if method == "POST" and qs:
            raw_params = (qs + "&" + body.decode("utf-8", "replace")) if body else qs
        with self.lock:
            if acct:
                a = self.objects.get(acct)
                if acct == self.platform_account["id"]:
                    acct = None
                elif a is None or a.get("object") != "account" or a.get("deleted"):
                    return self._json(
                        403,
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "code": "account_invalid",
                                "message": "The provided key '%s' does not have access to account '%s' "
                                "(or that account "
                                "does not exist). Application access may have been revoked."
                                % (key[:8] + "*" * 12, acct),
                            }
                        },
                        req_id=req_id,
                    )
            ctx.account = acct
            if method == "POST" and ctx.idem:
                if len(ctx.idem) > 255:
                    return self._json(
                        400,
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "message": "Idempotency-Key must be at most 255 characters.",
                            }
                        },
                        req_id=req_id,
                    )
                try:
                    fp = (
                        method,
                        path,
                        tuple(
                            sorted(
                                urllib.parse.parse_qsl(
                                    raw_params.decode("utf-8", "replace")
                                    if isinstance(raw_params, bytes)
                                    else raw_params,
                                    keep_blank_values=True,
                                )
                            )
                        ),
                    )
                except Exception:
                    fp = (method, path, raw_params)
                idem_slot = (acct, ctx.idem)
                prior = self.idem.get(idem_slot)
                if prior is not None:
                    if prior["fp"] != fp:
                        return self._json(
                            400,
                            {
                                "error": {
                                    "type": "idempotency_error",
                                    "message": "Keys for idempotent requests can only be used with the same "
                                    "parameters they "
                                    "were first used with. Try using a key other than '%s' if you meant to "
                                    "execute a different request." % ctx.idem,
                                }
                            },
                            req_id=req_id,
                        )
                    status, rbody = prior["status"], prior["body"]
                    return (
                        status,
                        [
                            ("Content-Type", "application/json"),
                            ("Stripe-Version", API_VERSION),
                            ("Request-Id", req_id),
                            ("Idempotent-Replayed", "true"),
                            ("Original-Request", prior["req_id"]),
                            ("Idempotency-Key", ctx.idem),
                        ],
                        rbody,
                    )
            try:
                q = decode_form(raw_params)
                expand = q.get("expand") or []
                if isinstance(expand, str):
                    expand = [expand]
                if not isinstance(expand, list) or not all(isinstance(x, str) for x in expand):
                    raise invalid("Invalid array", param="expand")
                args = [ctx, q]
                if oid:
                    args.append(urllib.parse.unquote(oid))
                if oid2:
                    args.append(urllib.parse.unquote(oid2))
                result = self._out(fn(*args))
                status = 200
                if expand:
                    result = self._expand(result, expand)
                rbody = json.dumps(result).encode("utf-8")
                save = True
            except ApiError as e:
                status = e.status
                rbody = json.dumps(e.body()).encode("utf-8")
                save = not (e.code or "").startswith("parameter_")
            except Exception as e:
                traceback.print_exc()
                status = 500
                rbody = json.dumps(
                    {"error": {"type": "api_error", "message": "Emulator internal error: %r" % (e,)}}
                ).encode("utf-8")
                save = False
            if idem_slot is not None and save:
                self._remember(
                    idem_slot, {"fp": fp, "status": status, "body": rbody, "req_id": req_id, "at": time.monotonic()}
                )
        h = [("Content-Type", "application/json"), ("Stripe-Version", API_VERSION), ("Request-Id", req_id)]
        if ctx.idem and method == "POST":
            h.append(("Idempotency-Key", ctx.idem))
        return status, h, rbody

    IDEMPOTENCY_TTL = 24 * 3600
    IDEMPOTENCY_MAX = 200_000

    def _remember(self, slot, entry):
        """Store an idempotent result; like Stripe, keys are forgotten after 24 hours (or when too many)."""
        idem = self.idem
        idem.pop(slot, None)
        idem[slot] = entry
        if len(idem) > self.IDEMPOTENCY_MAX or next(iter(idem.values()))["at"] < entry["at"] - self.IDEMPOTENCY_TTL:
            horizon = entry["at"] - self.IDEMPOTENCY_TTL
            while idem:
                first = next(iter(idem))
                if len(idem) > self.IDEMPOTENCY_MAX or idem[first]["at"] < horizon:
                    del idem[first]
                else:
                    break

    # ============================================================ customers
    CUSTOMER_SPEC = {
        "email": STR,
        "name": STR,
        "description": STR,
        "phone": STR,
        "metadata": META,
        "payment_method": STR,
        "address": ANY,
        "shipping": ANY,
        "invoice_settings": ANY,
        "preferred_locales": STRLIST,
        "tax_exempt": enum("none", "exempt", "reverse", None),
        "balance": INT,
        "invoice_prefix": STR,
        "next_invoice_sequence": INT,
        "source": STR,
        "test_clock": STR,
        "tax": ANY,
        "validate": BOOL,
        "coupon": STR,
        "promotion_code": STR,
        "individual_name": STR,
        "business_name": STR,
    }

    @staticmethod
    def _check_email(p):
        e = p.get("email")
        if e and ("@" not in e or " " in e.strip()):
            raise invalid("Invalid email address: %s" % e, param="email", code="email_invalid")

    def customer_create(self, ctx, q):
        p = validate(q, self.CUSTOMER_SPEC)
        self._check_email(p)
        now = self._now()
        inv = {"custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None}
        if isinstance(p.get("invoice_settings"), dict):
            dpm = p["invoice_settings"].get("default_payment_method")
            if dpm:
                inv["default_payment_method"] = dpm
        c = {
            "id": "cus_" + rand(14),
            "object": "customer",
            "address": address_from(p["address"]) if p.get("address") else None,
            "balance": p.get("balance", 0),
            "created": now,
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": p.get("description") or None,
            "discount": None,
            "email": p.get("email") or None,
            "invoice_prefix": p.get("invoice_prefix") or rand(8).upper(),
            "invoice_settings": inv,
            "livemode": False,
            "metadata": {},
            "name": p.get("name") or None,
            "next_invoice_sequence": p.get("next_invoice_sequence", 1),
            "phone": p.get("phone") or None,
            "preferred_locales": p.get("preferred_locales") or [],
            "shipping": p.get("shipping") or None,
            "tax_exempt": p.get("tax_exempt") or "none",
            "test_clock": None,
        }
        self._apply_metadata(c, p.get("metadata"))
        self._store("customer", c, ctx.account, index=("email",))
        self._emit("customer.created", c, ctx, ctx.account)
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
            self._attach_pm(ctx, pm, c)
        return c

    def customer_retrieve(self, ctx, q, cid):
        validate(q, {"expand": STRLIST})
        c = self.objects.get(cid)
        if c is not None and c.get("object") == "customer" and c.get("deleted") and self.owner.get(cid) == ctx.account:
            return {"id": cid, "object": "customer", "deleted": True}
        return self._get("customer", "customer", cid, ctx)

    def customer_update(self, ctx, q, cid):
        p = validate(q, self.CUSTOMER_SPEC)
        c = self._get("customer", "customer", cid, ctx)
        self._check_email(p)
        before = jcopy(c)
        for f in ("email", "name", "description", "phone"):
            if f in p:
                c[f] = p[f] or None
        if "email" in p:
            self._index("customer", "email", c["email"], cid)
        if "address" in p:
            c["address"] = address_from(p["address"]) if p["address"] else None
        if "shipping" in p:
            c["shipping"] = p["shipping"] or None
        if "preferred_locales" in p:
            c["preferred_locales"] = p["preferred_locales"]
        if "tax_exempt" in p:
            c["tax_exempt"] = p["tax_exempt"] or "none"
        if "balance" in p:
            c["balance"] = p["balance"]
        if isinstance(p.get("invoice_settings"), dict) and "default_payment_method" in p["invoice_settings"]:
            dpm = p["invoice_settings"]["default_payment_method"] or None
            if dpm:
                pm = self._get(
                    "payment_method", "PaymentMethod", dpm, ctx, "invoice_settings[default_payment_method]", 400
                )
                if pm.get("customer") != cid:
                    raise invalid(
                        "The customer does not have a payment method with the ID %s. The payment method "
                        "must be attached to the customer." % dpm,
                        param="invoice_settings[default_payment_method]",
                        code="resource_missing",
                    )
            c["invoice_settings"] = dict(c["invoice_settings"], default_payment_method=dpm)
        self._apply_metadata(c, p.get("metadata"))
        prev = self._diff(before, c)
        if prev:
            self._emit("customer.updated", c, ctx, ctx.account, prev)
        return c

    def customer_delete(self, ctx, q, cid):
        validate(q, {})
        c = self._get("customer", "customer", cid, ctx)
        c["deleted"] = True
        snapshot = dict(c)
        snapshot.pop("deleted")
        self._emit("customer.deleted", snapshot, ctx, ctx.account)
        return {"id": cid, "object": "customer", "deleted": True}

    def customer_list(self, ctx, q):
        email = self._pop_str(q, "email")
        if email:
            return self._list(
                ctx, q, "customer", "/v1/customers", index=("email", email), pred=lambda o: o.get("email") == email
            )
        self._pop_str(q, "test_clock")
        return self._list(ctx, q, "customer", "/v1/customers")

    def customer_payment_methods(self, ctx, q, cid):
        self._get("customer", "customer", cid, ctx)
        t = self._pop_str(q, "type")
        self._pop_str(q, "allow_redisplay")
        return self._list(
            ctx,
            q,
            "payment_method",
            "/v1/customers/%s/payment_methods" % cid,
            index=("customer", cid),
            pred=lambda o: o.get("customer") == cid and (not t or o["type"] == t),
        )

    # ======================================================= payment methods
    def _card_from_number(self, number, exp_month=12, exp_year=None, param_prefix="card"):
        number = (number or "").replace(" ", "").replace("-", "")
        if not number.isdigit() or len(number) < 12 or len(number) > 19 or not luhn_ok(number):
            raise ApiError(
                402,
                "Your card number is incorrect.",
                type="card_error",
                code="incorrect_number",
                param="%s[number]" % param_prefix,
            )
        brand, behaviour, decline, funding = CARDS.get(number, (None, "success", None, "credit"))
        if brand is None:
            brand = {"4": "visa", "5": "mastercard", "2": "mastercard", "3": "amex", "6": "discover"}.get(
                number[0], "unknown"
            )
        return {
            "number": number,
            "brand": brand,
            "behaviour": behaviour,
            "decline": decline,
            "funding": funding,
            "exp_month": exp_month,
            "exp_year": exp_year or (time.gmtime().tm_year + 3),
        }

    def _new_pm(self, ctx, card, billing=None, metadata=None, allow_redisplay="unspecified"):
        now = self._now()
        pm = {
            "id": "pm_" + rand(),
            "object": "payment_method",
            "allow_redisplay": allow_redisplay,
            "billing_details": {
                "address": address_from((billing or {}).get("address")),
                "email": (billing or {}).get("email") or None,
                "name": (billing or {}).get("name") or None,
                "phone": (billing or {}).get("phone") or None,
                "tax_id": None,
            },
            "card": {
                "brand": card["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": "US",
                "display_brand": card["brand"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "fingerprint": "fp" + card["number"][-4:] + card["number"][:6],
                "funding": card["funding"],
                "generated_from": None,
                "last4": card["number"][-4:],
                "networks": {"available": [card["brand"]], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
                "regulated_status": "unregulated",
            },
            "created": now,
            "customer": None,
            "livemode": False,
            "metadata": dict(metadata or {}),
            "type": "card",
            "customer_account": None,
        }
        self._store("payment_method", pm, ctx.account)
        self.internal[pm["id"]] = {"behaviour": card["behaviour"], "decline": card["decline"]}
        return pm

    def _resolve_pm(self, ctx, pm_id, param):
        if pm_id in PM_TOKENS:
            return self._new_pm(ctx, self._card_from_number(PM_TOKENS[pm_id]))
        if pm_id in CARD_TOKENS:
            return self._new_pm(ctx, self._card_from_number(CARD_TOKENS[pm_id]))
        o = self.objects.get(pm_id)
        if o is None or o.get("object") != "payment_method" or self.owner.get(pm_id) != ctx.account:
            raise not_found("PaymentMethod", pm_id, param, 400)
        return o

    PM_SPEC = {
        "type": enum("card"),
        "card": ANY,
        "billing_details": ANY,
        "metadata": META,
        "allow_redisplay": enum("always", "limited", "unspecified"),
        "customer": STR,
        "payment_method": STR,
        "radar_options": ANY,
    }

    def pm_create(self, ctx, q):
        p = validate(q, self.PM_SPEC)
        if p.get("payment_method"):
            src = self._resolve_pm(ctx, p["payment_method"], "payment_method")
            return src
        require(p, "type")
        card = p.get("card")
        if not isinstance(card, dict):
            raise ApiError(400, "Missing required param: card.", code="parameter_missing", param="card")
        for k in card:
            if k not in ("number", "exp_month", "exp_year", "cvc", "token", "networks"):
                raise ApiError(
                    400, "Received unknown parameter: card[%s]" % k, code="parameter_unknown", param="card[%s]" % k
                )
        if card.get("token"):
            tok = card["token"]
            if tok not in CARD_TOKENS:
                raise not_found("token", tok, "card[token]", 400)
            c = self._card_from_number(CARD_TOKENS[tok])
        else:
            for f in ("number", "exp_month", "exp_year"):
                if not card.get(f):
                    raise ApiError(
                        400, "Missing required param: card[%s]." % f, code="parameter_missing", param="card[%s]" % f
                    )
            em, ey = card["exp_month"], card["exp_year"]
            if not (isinstance(em, str) and em.isdigit()):
                raise ApiError(
                    400, "Invalid integer: %s" % em, code="parameter_invalid_integer", param="card[exp_month]"
                )
            if not (isinstance(ey, str) and ey.isdigit()):
                raise ApiError(
                    400, "Invalid integer: %s" % ey, code="parameter_invalid_integer", param="card[exp_year]"
                )
            em, ey = int(em), int(ey)
            if ey < 100:
                ey += 2000
            if not 1 <= em <= 12:
                raise ApiError(
                    402,
                    "Your card's expiration month is invalid.",
                    type="card_error",
                    code="invalid_expiry_month",
                    param="card[exp_month]",
                )
            now = time.gmtime()
            if ey < now.tm_year or (ey == now.tm_year and em < now.tm_mon) or ey > now.tm_year + 50:
                raise ApiError(
                    402,
                    "Your card's expiration year is invalid.",
                    type="card_error",
                    code="invalid_expiry_year",
                    param="card[exp_year]",
                )
            c = self._card_from_number(card["number"], em, ey)
        pm = self._new_pm(
            ctx,
            c,
            p.get("billing_details") if isinstance(p.get("billing_details"), dict) else None,
            None,
            p.get("allow_redisplay") or "unspecified",
        )
        self._apply_metadata(pm, p.get("metadata"))
        return pm

    def pm_retrieve(self, ctx, q, pm_id):
        validate(q, {"expand": STRLIST})
        if pm_id in PM_TOKENS:
            return self._resolve_pm(ctx, pm_id, "id")
        return self._get("payment_method", "PaymentMethod", pm_id, ctx)

    def pm_update(self, ctx, q, pm_id):
        p = validate(
            q,
            {
                "billing_details": ANY,
                "metadata": META,
                "card": obj(exp_month=INT, exp_year=INT),
                "allow_redisplay": enum("always", "limited", "unspecified"),
            },
        )
        pm = self._get("payment_method", "PaymentMethod", pm_id, ctx)
        before = jcopy(pm)
        if isinstance(p.get("billing_details"), dict):
            b = p["billing_details"]
            bd = pm["billing_details"]
            for f in ("email", "name", "phone"):
                if f in b:
                    bd[f] = b[f] or None
            if "address" in b:
                bd["address"] = address_from(b["address"])
        if p.get("card"):
            for f in ("exp_month", "exp_year"):
                if f in p["card"]:
                    pm["card"][f] = p["card"][f]
        if p.get("allow_redisplay"):
            pm["allow_redisplay"] = p["allow_redisplay"]
        self._apply_metadata(pm, p.get("metadata"))
        prev = self._diff(before, pm)
        if prev:
            self._emit("payment_method.updated", pm, ctx, ctx.account, prev)
        return pm

    def _attach_pm(self, ctx, pm, cust):
        if pm.get("customer") and pm["customer"] != cust["id"]:
            raise invalid(
                "The payment method you provided has already been attached to a customer.",
                param="payment_method",
                code="payment_method_unexpected_state",
            )
        pm["customer"] = cust["id"]
        self._index("payment_method", "customer", cust["id"], pm["id"])
        self._emit("payment_method.attached", pm, ctx, ctx.account)

    def pm_attach(self, ctx, q, pm_id):
        p = validate(q, {"customer": STR})
        require(p, "customer")
        pm = (
            self._get("payment_method", "PaymentMethod", pm_id, ctx)
            if pm_id not in PM_TOKENS
            else self._resolve_pm(ctx, pm_id, "id")
        )
        cust = self._get("customer", "customer", p["customer"], ctx, "customer", 400)
        self._attach_pm(ctx, pm, cust)
        return pm

    def pm_detach(self, ctx, q, pm_id):
        validate(q, {})
        pm = self._get("payment_method", "PaymentMethod", pm_id, ctx)
        if not pm.get("customer"):
            raise invalid(
                "The payment method %s is not attached to a customer." % pm_id, code="payment_method_unexpected_state"
            )
        pm["customer"] = None
        self._emit("payment_method.detached", pm, ctx, ctx.account)
        return pm

    def pm_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        t = self._pop_str(q, "type")
        self._pop_str(q, "allow_redisplay")
        if cust:
            self._get("customer", "customer", cust, ctx, "customer", 400)
            return self._list(
                ctx,
                q,
                "payment_method",
                "/v1/payment_methods",
                index=("customer", cust),
                pred=lambda o: o.get("customer") == cust and (not t or o["type"] == t),
            )
        return self._list(ctx, q, "payment_method", "/v1/payment_methods", pred=lambda o: not t or o["type"] == t)

    # ======================================================= payment intents
    PI_COMMON = {
        "amount": INT,
        "currency": STR,
        "customer": STR,
        "description": STR,
        "metadata": META,
        "payment_method": STR,
        "payment_method_types": STRLIST,
        "receipt_email": STR,
        "setup_future_usage": enum("off_session", "on_session", None),
        "shipping": ANY,
        "statement_descriptor": STR,
        "statement_descriptor_suffix": STR,
        "transfer_group": STR,
        "application_fee_amount": INT,
        "capture_method": enum("automatic", "automatic_async", "manual"),
        "payment_method_options": ANY,
        "payment_method_data": ANY,
        "payment_method_configuration": STR,
        "excluded_payment_method_types": STRLIST,
    }
    PI_CREATE = dict(
        PI_COMMON,
        confirm=BOOL,
        confirmation_method=enum("automatic", "manual"),
        transfer_data=obj(destination=STR, amount=INT),
        on_behalf_of=STR,
        automatic_payment_methods=obj(enabled=BOOL, allow_redirects=enum("always", "never")),
        return_url=STR,
        off_session=ANY,
        error_on_requires_action=BOOL,
        mandate_data=ANY,
        use_stripe_sdk=BOOL,
        radar_options=ANY,
        confirmation_token=STR,
        payment_details=ANY,
        customer_account=STR,
        hooks=ANY,
        amount_details=ANY,
    )
    PI_UPDATE = dict(PI_COMMON, transfer_data=obj(amount=INT), amount_details=ANY, payment_details=ANY)
    PI_CONFIRM = {
        "payment_method": STR,
        "return_url": STR,
        "receipt_email": STR,
        "setup_future_usage": enum("off_session", "on_session", None),
        "payment_method_options": ANY,
        "off_session": ANY,
        "mandate_data": ANY,
        "client_secret": STR,
        "use_stripe_sdk": BOOL,
        "error_on_requires_action": BOOL,
        "capture_method": enum("automatic", "automatic_async", "manual"),
        "payment_method_data": ANY,
        "payment_method_types": STRLIST,
        "shipping": ANY,
        "radar_options": ANY,
        "confirmation_token": STR,
        "key": STR,
        "_stripe_version": STR,
    }

    def _check_amount(self, amount, currency, param="amount"):
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param=param
            )
        if amount > 99999999:
            raise ApiError(400, "Amount must be no more than $999,999.99", code="amount_too_large", param=param)
        minimum = CURRENCY_MIN.get(currency, 50)
        if amount < minimum:
            if currency in ZERO_DECIMAL:
                shown = "%d %s" % (minimum, currency)
            else:
                sym = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
                shown = "%s%d.%02d %s" % (sym, minimum // 100, minimum % 100, currency)
            raise ApiError(400, "Amount must be at least %s" % shown, code="amount_too_small", param=param)

    def _check_currency(self, currency, param="currency"):
        c = (currency or "").lower()
        if c not in CURRENCY_MIN:
            raise ApiError(
                400,
                "Invalid currency: %s. Stripe currently supports these currencies: %s"
                % (currency, ", ".join(sorted(CURRENCY_MIN))),
                param=param,
            )
        return c

    def _resolve_account(self, acct_id, param):
        a = self.objects.get(acct_id)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", acct_id, param, 400)
        return a

    def pi_create(self, ctx, q):
        p = validate(q, self.PI_CREATE)
        require(p, "amount", "currency")
        currency = self._check_currency(p["currency"])
        self._check_amount(p["amount"], currency)
        cust = None
        if p.get("customer"):
            cust = self._get("customer", "customer", p["customer"], ctx, "customer", 400)
        td = None
        if p.get("transfer_data"):
            dest = p["transfer_data"].get("destination")
            if not dest:
                raise ApiError(
                    400,
                    "Missing required param: transfer_data[destination].",
                    code="parameter_missing",
                    param="transfer_data[destination]",
                )
            self._resolve_account(dest, "transfer_data[destination]")
            td = {"destination": dest}
            if "amount" in p["transfer_data"]:
                ta = p["transfer_data"]["amount"]
                if ta < 0 or ta > p["amount"]:
                    raise invalid(
                        "transfer_data[amount] must be between 0 and the PaymentIntent amount.",
                        param="transfer_data[amount]",
                    )
                td["amount"] = ta
        if p.get("on_behalf_of"):
            self._resolve_account(p["on_behalf_of"], "on_behalf_of")
        fee = p.get("application_fee_amount")
        if fee is not None:
            if fee < 0:
                raise ApiError(
                    400,
                    "This value must be greater than or equal to 0.",
                    code="parameter_invalid_integer",
                    param="application_fee_amount",
                )
            if fee > p["amount"]:
                raise invalid(
                    "The application fee amount must be less than or equal to the amount.",
                    param="application_fee_amount",
                )
            if not ctx.account and td is None:
                raise invalid(
                    "Can only apply an application_fee_amount when the PaymentIntent is attempting a "
                    "direct payment (using an OAuth key or Stripe-Account header) or destination payment "
                    "(using `transfer_data[destination]`).",
                    param="application_fee_amount",
                )
        if p.get("automatic_payment_methods") and p.get("payment_method_types"):
            raise invalid(
                "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
                param="automatic_payment_methods",
                code="parameters_exclusive",
            )
        pm = None
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
        elif isinstance(p.get("payment_method_data"), dict):
            pm = self._pm_from_data(ctx, p["payment_method_data"])
        now = self._now()
        pid = "pi_" + rand()
        apm = p.get("automatic_payment_methods")
        pi = {
            "id": pid,
            "object": "payment_intent",
            "amount": p["amount"],
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": fee,
            "automatic_payment_methods": (
                {"allow_redirects": apm.get("allow_redirects", "always"), "enabled": bool(apm.get("enabled"))}
                if apm
                else None
            ),
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": p.get("capture_method") or "automatic",
            "client_secret": "%s_secret_%s" % (pid, rand(25)),
            "confirmation_method": p.get("confirmation_method") or "automatic",
            "created": now,
            "currency": currency,
            "customer": cust["id"] if cust else None,
            "description": p.get("description") or None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": p.get("on_behalf_of") or None,
            "payment_method": pm["id"] if pm else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": p.get("payment_method_types") or ["card"],
            "processing": None,
            "receipt_email": p.get("receipt_email") or None,
            "review": None,
            "setup_future_usage": p.get("setup_future_usage"),
            "shipping": p.get("shipping") or None,
            "statement_descriptor": p.get("statement_descriptor") or None,
            "statement_descriptor_suffix": p.get("statement_descriptor_suffix") or None,
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "transfer_data": td,
            "transfer_group": p.get("transfer_group") or None,
            "source": None,
            "excluded_payment_method_types": p.get("excluded_payment_method_types") or None,
            "customer_account": None,
            "managed_payments": None,
        }
        if apm and apm.get("enabled"):
            pi["payment_method_configuration_details"] = {"id": "pmc_" + rand(), "parent": None}
        self._apply_metadata(pi, p.get("metadata"))
        self._store("payment_intent", pi, ctx.account, index=("customer",))
        self.internal[pid] = {"return_url": p.get("return_url"), "charges": []}
        self._emit("payment_intent.created", pi, ctx, ctx.account)
        if p.get("confirm"):
            self._confirm(ctx, pi, None, p)
        return pi

    def _pm_from_data(self, ctx, d):
        if d.get("type") not in (None, "card"):
            raise invalid(
                "The emulator only supports payment_method_data[type]=card.", param="payment_method_data[type]"
            )
        card = d.get("card") or {}
        if isinstance(card, dict) and card.get("token"):
            c = self._card_from_number(CARD_TOKENS.get(card["token"], "4242424242424242"))
        elif isinstance(card, dict) and card.get("number"):
            c = self._card_from_number(card["number"], param_prefix="payment_method_data[card]")
        else:
            raise ApiError(
                400,
                "Missing required param: payment_method_data[card].",
                code="parameter_missing",
                param="payment_method_data[card]",
            )
        return self._new_pm(ctx, c, d.get("billing_details") if isinstance(d.get("billing_details"), dict) else None)

    def _pi_for(self, ctx, pid, q):
        pi = self.objects.get(pid)
        if ctx.publishable:
            cs = q.get("client_secret")
            if not cs:
                raise ApiError(
                    400, "Missing required param: client_secret.", code="parameter_missing", param="client_secret"
                )
            if pi is None or pi.get("object") != "payment_intent" or pi["client_secret"] != cs:
                raise not_found("payment_intent", pid)
            return pi
        return self._get("payment_intent", "payment_intent", pid, ctx)

    def pi_retrieve(self, ctx, q, pid):
        validate(q, {"client_secret": STR, "expand": STRLIST})
        pi = self._pi_for(ctx, pid, q)
        if ctx.publishable:
            # Stripe.js sees a restricted view
            return {
                k: pi[k]
                for k in (
                    "id",
                    "object",
                    "amount",
                    "amount_details",
                    "automatic_payment_methods",
                    "canceled_at",
                    "cancellation_reason",
                    "capture_method",
                    "client_secret",
                    "confirmation_method",
                    "created",
                    "currency",
                    "description",
                    "last_payment_error",
                    "livemode",
                    "next_action",
                    "payment_method",
                    "payment_method_types",
                    "processing",
                    "receipt_email",
                    "setup_future_usage",
                    "shipping",
                    "status",
                )
            }
        return pi

    def pi_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        if cust:
            return self._list(
                ctx,
                q,
                "payment_intent",
                "/v1/payment_intents",
                index=("customer", cust),
                pred=lambda o: o.get("customer") == cust,
            )
        return self._list(ctx, q, "payment_intent", "/v1/payment_intents")

    def pi_update(self, ctx, q, pid):
        p = validate(q, self.PI_UPDATE)
        pi = self._get("payment_intent", "payment_intent", pid, ctx)
        st = pi["status"]
        only_meta = set(p) <= {"metadata", "description", "receipt_email", "shipping", "expand"}
        if st in ("succeeded", "canceled", "processing") and not only_meta:
            raise invalid(
                "This PaymentIntent's parameters could not be updated because it has a status of %s. You "
                "may only update the metadata, description, receipt_email and shipping of a PaymentIntent "
                "with one of the following statuses: succeeded, canceled." % st,
                code="payment_intent_unexpected_state",
            )
        if st == "requires_capture" and not (
            set(p)
            <= {"metadata", "description", "receipt_email", "shipping", "application_fee_amount", "transfer_data"}
        ):
            raise invalid(
                "This PaymentIntent could not be updated because it has a status of requires_capture.",
                code="payment_intent_unexpected_state",
            )
        currency = pi["currency"]
        if "currency" in p:
            currency = self._check_currency(p["currency"])
        if "amount" in p or "currency" in p:
            self._check_amount(p.get("amount", pi["amount"]), currency)
            pi["amount"] = p.get("amount", pi["amount"])
            pi["currency"] = currency
        if "customer" in p:
            if p["customer"]:
                self._get("customer", "customer", p["customer"], ctx, "customer", 400)
            pi["customer"] = p["customer"] or None
            self._index("payment_intent", "customer", pi["customer"], pid)
        for f in (
            "description",
            "receipt_email",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "transfer_group",
            "shipping",
        ):
            if f in p:
                pi[f] = p[f] or None
        if "setup_future_usage" in p:
            pi["setup_future_usage"] = p["setup_future_usage"]
        if "capture_method" in p:
            pi["capture_method"] = p["capture_method"]
        if "payment_method_types" in p:
            pi["payment_method_types"] = p["payment_method_types"] or ["card"]
        if "application_fee_amount" in p:
            pi["application_fee_amount"] = p["application_fee_amount"]
        if p.get("transfer_data") and pi["transfer_data"] and "amount" in p["transfer_data"]:
            pi["transfer_data"]["amount"] = p["transfer_data"]["amount"]
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
            pi["next_action"] = None
        elif isinstance(p.get("payment_method_data"), dict):
            pm = self._pm_from_data(ctx, p["payment_method_data"])
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        elif st == "requires_action" and ("amount" in p or "currency" in p):
            pi["status"] = "requires_confirmation"
            pi["next_action"] = None
        self._apply_metadata(pi, p.get("metadata"))
        return pi

    def pi_confirm(self, ctx, q, pid):
        p = validate(q, self.PI_CONFIRM)
        pi = self._pi_for(ctx, pid, p)
        if p.get("capture_method"):
            if pi["status"] in ("requires_payment_method", "requires_confirmation", "requires_action"):
                pi["capture_method"] = p["capture_method"]
        for f in ("receipt_email", "shipping"):
            if p.get(f):
                pi[f] = p[f]
        if p.get("return_url"):
            self.internal[pid]["return_url"] = p["return_url"]
        self._confirm(ctx, pi, p.get("payment_method"), p)
        if ctx.publishable:
            return self.pi_retrieve(ctx, {"client_secret": pi["client_secret"]}, pid)
        return pi

    def _confirm(self, ctx, pi, pm_param, p):
        st = pi["status"]
        if st not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise ApiError(
                400,
                "This PaymentIntent's payment_method could not be updated because it has a status of "
                "%s. You may only update the payment_method of a PaymentIntent with one of the "
                "following statuses: requires_payment_method, requires_confirmation, "
                "requires_action." % st
                if pm_param
                else "You cannot confirm this PaymentIntent because it has a status of %s. Only a "
                "PaymentIntent with one of the following statuses may be confirmed: "
                "requires_confirmation, requires_action, requires_payment_method." % st,
                code="payment_intent_unexpected_state",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        if pm_param:
            pm = self._resolve_pm(ctx, pm_param, "payment_method")
        elif isinstance(p.get("payment_method_data"), dict):
            pm = self._pm_from_data(ctx, p["payment_method_data"])
        elif pi.get("payment_method"):
            pm = self.objects[pi["payment_method"]]
        else:
            raise ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method. To "
                "confirm the PaymentIntent with %s, specify a payment method attached to this "
                "customer along with the customer ID." % (pi.get("customer") or "a payment method"),
                code="payment_intent_unexpected_state",
                param="payment_method",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        if pm.get("customer") and pi.get("customer") and pm["customer"] != pi["customer"]:
            raise invalid(
                "The provided PaymentMethod belongs to a different Customer than the one on this PaymentIntent.",
                param="payment_method",
                code="payment_method_unexpected_state",
            )
        pi["payment_method"] = pm["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        behaviour = self.internal.get(pm["id"], {}).get("behaviour", "success")
        if behaviour == "3ds" and not self.internal[pi["id"]].get("3ds_ok"):
            if p.get("error_on_requires_action"):
                self._fail_auth(ctx, pi, pm, emit=True)
                raise ApiError(
                    402,
                    "Your card was declined. This transaction requires authentication.",
                    type="card_error",
                    code="authentication_required",
                    decline_code="authentication_required",
                    extra={"payment_intent": jcopy(self._out(pi)), "payment_method": jcopy(pm)},
                )
            pi["status"] = "requires_action"
            ret = self.internal[pi["id"]].get("return_url")
            if ret:
                pi["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {"return_url": ret, "url": "%s/_emulator/3ds/%s" % (ctx.base_url, pi["id"])},
                }
            else:
                pi["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "three_d_secure_redirect",
                        "stripe_js": "%s/_emulator/3ds/%s" % (ctx.base_url, pi["id"]),
                        "source": "src_" + rand(),
                    },
                }
            self._emit("payment_intent.requires_action", pi, ctx, ctx.account)
            return
        self._attempt_charge(ctx, pi, pm, behaviour)

    def _fail_auth(self, ctx, pi, pm, emit=True):
        pi["status"] = "requires_payment_method"
        pi["next_action"] = None
        pi["payment_method"] = None
        pi["last_payment_error"] = {
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
            "or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
            "payment_method": jcopy(pm),
            "type": "invalid_request_error",
        }
        if emit:
            self._emit("payment_intent.payment_failed", pi, ctx, self.owner.get(pi["id"]))

    def _new_charge(self, ctx, pi, pm, status, captured, outcome, failure=None):
        now = self._now()
        card = pm["card"]
        ch = {
            "id": "ch_" + rand(),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": pi.get("application_fee_amount"),
            "balance_transaction": None,
            "billing_details": jcopy(pm["billing_details"]),
            "calculated_statement_descriptor": (pi.get("statement_descriptor") or "TALKPAY")[:22].upper(),
            "captured": False,
            "created": now,
            "currency": pi["currency"],
            "customer": pi.get("customer"),
            "description": pi.get("description"),
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": failure[0] if failure else None,
            "failure_message": failure[1] if failure else None,
            "fraud_details": {},
            "livemode": False,
            "metadata": dict(pi["metadata"]),
            "on_behalf_of": pi.get("on_behalf_of"),
            "outcome": outcome,
            "paid": status == "succeeded",
            "payment_intent": pi["id"],
            "payment_method": pm["id"],
            "payment_method_details": {
                "card": {
                    "amount_authorized": pi["amount"] if status == "succeeded" else None,
                    "brand": card["brand"],
                    "checks": dict(card["checks"]),
                    "country": card["country"],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                    "extended_authorization": {"status": "disabled"},
                    "fingerprint": card["fingerprint"],
                    "funding": card["funding"],
                    "incremental_authorization": {"status": "unavailable"},
                    "installments": None,
                    "last4": card["last4"],
                    "mandate": None,
                    "multicapture": {"status": "unavailable"},
                    "network": card["brand"],
                    "network_token": {"used": False},
                    "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                    "three_d_secure": (
                        {"authentication_flow": "challenge", "result": "authenticated", "version": "2.2.0"}
                        if self.internal[pi["id"]].get("3ds_ok")
                        else None
                    ),
                    "wallet": None,
                },
                "type": "card",
            },
            "receipt_email": pi.get("receipt_email"),
            "receipt_number": None,
            "receipt_url": "https://pay.stripe.com/receipts/emulator/%s" % rand(16),
            "refunded": False,
            "review": None,
            "shipping": pi.get("shipping"),
            "source_transfer": None,
            "statement_descriptor": pi.get("statement_descriptor"),
            "statement_descriptor_suffix": pi.get("statement_descriptor_suffix"),
            "status": status,
            "transfer_data": jcopy(pi["transfer_data"]) if pi.get("transfer_data") else None,
            "transfer_group": pi.get("transfer_group"),
            "source": None,
        }
        if pi.get("transfer_data"):
            ch["transfer"] = None
        self._store("charge", ch, self.owner.get(pi["id"]), index=("payment_intent", "customer"))
        self.internal[ch["id"]] = {"transferred": 0}
        self.internal[pi["id"]]["charges"].append(ch["id"])
        pi["latest_charge"] = ch["id"]
        return ch

    def _attempt_charge(self, ctx, pi, pm, behaviour):
        acct = self.owner.get(pi["id"])
        if behaviour == "decline":
            decline = self.internal[pm["id"]]["decline"]
            code, message = DECLINES.get(decline, ("card_declined", "Your card was declined."))
            outcome = {
                "advice_code": "try_again_later"
                if decline == "processing_error"
                else "do_not_try_again"
                if decline in ("lost_card", "stolen_card", "fraudulent")
                else "try_again_later",
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "declined_by_network",
                "reason": decline,
                "risk_level": "highest" if decline == "fraudulent" else "normal",
                "risk_score": 85 if decline == "fraudulent" else 20,
                "seller_message": "The bank returned the decline code `%s`." % decline,
                "type": "issuer_declined",
            }
            ch = self._new_charge(ctx, pi, pm, "failed", False, outcome, (code, message))
            err = {
                "charge": ch["id"],
                "code": code,
                "decline_code": decline,
                "doc_url": "https://stripe.com/docs/error-codes/%s" % code.replace("_", "-"),
                "message": message,
                "payment_method": jcopy(pm),
                "type": "card_error",
            }
            if code != "card_declined":
                err.pop("decline_code")
                if decline in ("expired_card", "incorrect_cvc"):
                    err["param"] = "exp_month" if decline == "expired_card" else "cvc"
            pi["status"] = "requires_payment_method"
            pi["payment_method"] = None
            pi["last_payment_error"] = err
            self._emit("charge.failed", ch, ctx, acct)
            self._emit("payment_intent.payment_failed", pi, ctx, acct)
            raise ApiError(
                402,
                message,
                type="card_error",
                code=code,
                decline_code=err.get("decline_code"),
                param=err.get("param"),
                extra={"charge": ch["id"], "payment_intent": jcopy(self._out(pi)), "payment_method": jcopy(pm)},
            )
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
        manual = pi["capture_method"] == "manual"
        ch = self._new_charge(ctx, pi, pm, "succeeded", not manual, outcome)
        self.internal[ch["id"]]["behaviour"] = behaviour
        if manual:
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self._emit("charge.succeeded", ch, ctx, acct)
            self._emit("payment_intent.amount_capturable_updated", pi, ctx, acct)
            return
        self._capture_charge(ctx, pi, ch, pi["amount"])
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        self._emit("charge.succeeded", ch, ctx, acct)
        self._emit("payment_intent.succeeded", pi, ctx, acct)
        self._after_capture(ctx, pi, ch)

    def _capture_charge(self, ctx, pi, ch, amount):
        acct = self.owner.get(ch["id"])
        ch["captured"] = True
        ch["amount_captured"] = amount
        behaviour = self.internal[ch["id"]].get("behaviour")
        pending = self.config["funds_pending"] and behaviour != "success_available"
        txn = self._txn(
            acct,
            amount,
            ch["currency"],
            "charge",
            ch["id"],
            fee=stripe_fee(amount),
            description=ch.get("description"),
            pending=pending,
        )
        ch["balance_transaction"] = txn["id"]
        fee = pi.get("application_fee_amount")
        if acct and fee:
            # direct charge with an application fee: the platform collects it
            self._txn(
                acct, -fee, ch["currency"], "application_fee", ch["id"], description="Application fee", pending=pending
            )
            self._txn(
                None, fee, ch["currency"], "application_fee", ch["id"], description="Application fee", pending=pending
            )

    def _after_capture(self, ctx, pi, ch):
        acct = self.owner.get(pi["id"])
        td = pi.get("transfer_data")
        if td:
            amount = td.get("amount")
            if amount is None:
                amount = ch["amount_captured"] - (pi.get("application_fee_amount") or 0)
            if amount > 0:
                tr = self._make_transfer(
                    ctx,
                    amount,
                    ch["currency"],
                    td["destination"],
                    pi.get("transfer_group"),
                    ch["id"],
                    {},
                    None,
                    pending_src=self._txn_pending(ch),
                )
                ch["transfer"] = tr["id"]
        if self.internal[ch["id"]].get("behaviour") == "dispute":
            self.scheduler.schedule(
                self.config["dispute_delay"] * self.config["time_scale"], self._auto_dispute, ch["id"]
            )
        del acct

    def _txn_pending(self, ch):
        t = self.objects.get(ch.get("balance_transaction") or "")
        return bool(t and t["status"] == "pending")

    def _auto_dispute(self, ch_id):
        with self.lock:
            ch = self.objects.get(ch_id)
            if ch and not ch["disputed"] and ch["status"] == "succeeded":
                self.open_dispute(ch_id, "fraudulent")

    def pi_cancel(self, ctx, q, pid):
        p = validate(q, {"cancellation_reason": enum("duplicate", "fraudulent", "requested_by_customer", "abandoned")})
        pi = self._get("payment_intent", "payment_intent", pid, ctx)
        st = pi["status"]
        if st in ("succeeded", "canceled"):
            raise ApiError(
                400,
                "You cannot cancel this PaymentIntent because it has a status of %s. Only a "
                "PaymentIntent with one of the following statuses may be canceled: "
                "requires_payment_method, requires_capture, requires_confirmation, "
                "requires_action, processing." % st,
                code="payment_intent_unexpected_state",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        acct = self.owner.get(pid)
        if st == "requires_capture" and pi.get("latest_charge"):
            ch = self.objects[pi["latest_charge"]]
            before = jcopy(ch)
            ch["refunded"] = True
            ch["amount_refunded"] = ch["amount"]
            self._emit("charge.refunded", ch, ctx, acct, self._diff(before, ch))
        pi["status"] = "canceled"
        pi["canceled_at"] = self._now()
        pi["cancellation_reason"] = p.get("cancellation_reason")
        pi["amount_capturable"] = 0
        pi["next_action"] = None
        self._emit("payment_intent.canceled", pi, ctx, acct)
        return pi

    def pi_capture(self, ctx, q, pid):
        p = validate(
            q,
            {
                "amount_to_capture": INT,
                "application_fee_amount": INT,
                "metadata": META,
                "statement_descriptor": STR,
                "statement_descriptor_suffix": STR,
                "transfer_data": obj(amount=INT),
                "final_capture": BOOL,
            },
        )
        pi = self._get("payment_intent", "payment_intent", pid, ctx)
        if pi["status"] != "requires_capture":
            raise ApiError(
                400,
                "This PaymentIntent could not be captured because it has a status of %s. Only a "
                "PaymentIntent with one of the following statuses may be captured: "
                "requires_capture." % pi["status"],
                code="payment_intent_unexpected_state",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        amount = p.get("amount_to_capture", pi["amount_capturable"])
        if amount < 1:
            raise ApiError(
                400,
                "This value must be greater than or equal to 1.",
                code="parameter_invalid_integer",
                param="amount_to_capture",
            )
        if amount > pi["amount_capturable"]:
            raise invalid(
                "The amount to capture (%d) must be less than or equal to the amount capturable (%d)."
                % (amount, pi["amount_capturable"]),
                param="amount_to_capture",
                code="amount_too_large",
            )
        if "application_fee_amount" in p:
            pi["application_fee_amount"] = p["application_fee_amount"]
        if p.get("transfer_data") and pi.get("transfer_data") and "amount" in p["transfer_data"]:
            pi["transfer_data"]["amount"] = p["transfer_data"]["amount"]
        self._apply_metadata(pi, p.get("metadata"))
        acct = self.owner.get(pid)
        ch = self.objects[pi["latest_charge"]]
        before = jcopy(ch)
        ch["application_fee_amount"] = pi.get("application_fee_amount")
        self._capture_charge(ctx, pi, ch, amount)
        pi["amount_capturable"] = 0
        pi["amount_received"] = amount
        pi["status"] = "succeeded"
        self._emit("charge.captured", ch, ctx, acct, self._diff(before, ch))
        self._emit("payment_intent.succeeded", pi, ctx, acct)
        self._after_capture(ctx, pi, ch)
        return pi

    def complete_3ds(self, pid, outcome):
        """Test helper: finish 3-D Secure for a PaymentIntent in requires_action."""
        ctx = Ctx()
        ctx.req_id = None
        pi = self.objects.get(pid)
        if pi is None or pi.get("object") != "payment_intent":
            raise not_found("payment_intent", pid)
        ctx.account = self.owner.get(pid)
        if pi["status"] != "requires_action":
            raise invalid(
                "PaymentIntent %s is not in requires_action (status: %s)." % (pid, pi["status"]),
                code="payment_intent_unexpected_state",
            )
        pm = self.objects[pi["payment_method"]]
        if outcome == "fail":
            self._fail_auth(ctx, pi, pm)
            return pi
        self.internal[pid]["3ds_ok"] = True
        pi["next_action"] = None
        try:
            self._attempt_charge(ctx, pi, pm, "success")
        except ApiError:
            pass
        return pi

    # ============================================================== charges
    def charge_retrieve(self, ctx, q, cid):
        validate(q, {"expand": STRLIST})
        return self._get("charge", "charge", cid, ctx)

    def charge_list(self, ctx, q):
        pi = self._pop_str(q, "payment_intent")
        cust = self._pop_str(q, "customer")
        tg = self._pop_str(q, "transfer_group")
        if pi:
            return self._list(
                ctx,
                q,
                "charge",
                "/v1/charges",
                index=("payment_intent", pi),
                pred=lambda o: (not cust or o.get("customer") == cust) and (not tg or o.get("transfer_group") == tg),
            )
        if cust:
            return self._list(
                ctx,
                q,
                "charge",
                "/v1/charges",
                index=("customer", cust),
                pred=lambda o: not tg or o.get("transfer_group") == tg,
            )
        return self._list(
            ctx, q, "charge", "/v1/charges", pred=(lambda o: o.get("transfer_group") == tg) if tg else None
        )

    def charge_update(self, ctx, q, cid):
        p = validate(
            q,
            {
                "description": STR,
                "metadata": META,
                "receipt_email": STR,
                "transfer_group": STR,
                "shipping": ANY,
                "fraud_details": ANY,
                "customer": STR,
            },
        )
        ch = self._get("charge", "charge", cid, ctx)
        before = jcopy(ch)
        for f in ("description", "receipt_email", "shipping"):
            if f in p:
                ch[f] = p[f] or None
        if "transfer_group" in p:
            if ch.get("transfer_group") and p["transfer_group"] != ch["transfer_group"]:
                raise invalid("The transfer_group of a charge can only be set once.", param="transfer_group")
            ch["transfer_group"] = p["transfer_group"] or None
        if p.get("customer"):
            self._get("customer", "customer", p["customer"], ctx, "customer", 400)
            ch["customer"] = p["customer"]
        if isinstance(p.get("fraud_details"), dict):
            ch["fraud_details"] = dict(p["fraud_details"])
        self._apply_metadata(ch, p.get("metadata"))
        prev = self._diff(before, ch)
        if prev:
            self._emit("charge.updated", ch, ctx, self.owner.get(cid), prev)
        return ch

    def charge_refunds(self, ctx, q, cid):
        self._get("charge", "charge", cid, ctx)
        return self._list(ctx, q, "refund", "/v1/charges/%s/refunds" % cid, index=("charge", cid))

    # ============================================================== refunds
    def refund_create(self, ctx, q):
        p = validate(
            q,
            {
                "payment_intent": STR,
                "charge": STR,
                "amount": INT,
                "reason": enum("duplicate", "fraudulent", "requested_by_customer"),
                "metadata": META,
                "reverse_transfer": BOOL,
                "refund_application_fee": BOOL,
                "instructions_email": STR,
                "origin": STR,
                "customer": STR,
                "currency": STR,
            },
        )
        if not p.get("payment_intent") and not p.get("charge"):
            raise ApiError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
                param="payment_intent",
            )
        if p.get("payment_intent"):
            pi = self._get("payment_intent", "payment_intent", p["payment_intent"], ctx, "payment_intent", 400)
            if p.get("charge") and p["charge"] != pi.get("latest_charge"):
                raise invalid("The charge does not belong to this PaymentIntent.", param="charge")
            if pi["status"] != "succeeded" or not pi.get("latest_charge"):
                raise invalid(
                    "This PaymentIntent does not have a successful charge to refund.",
                    param="payment_intent",
                    code="charge_not_refundable",
                )
            ch = self.objects[pi["latest_charge"]]
        else:
            ch = self._get("charge", "charge", p["charge"], ctx, "charge", 400)
            pi = self.objects.get(ch.get("payment_intent") or "")
        if ch["status"] != "succeeded" or not ch["captured"]:
            raise invalid(
                "Charge %s has not been captured or did not succeed, so it cannot be refunded." % ch["id"],
                param="charge",
                code="charge_not_refundable",
            )
        if ch["disputed"]:
            raise invalid("Charge %s has been charged back; cannot issue a refund." % ch["id"], code="charge_disputed")
        remaining = ch["amount_captured"] - ch["amount_refunded"]
        if remaining <= 0:
            raise invalid("Charge %s has already been refunded." % ch["id"], code="charge_already_refunded")
        amount = p.get("amount", remaining)
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise invalid(
                "Refund amount ($%d.%02d) is greater than unrefunded amount on charge ($%d.%02d)"
                % (amount // 100, amount % 100, remaining // 100, remaining % 100),
                param="amount",
                code="amount_too_large",
            )
        acct = self.owner.get(ch["id"])
        now = self._now()
        rid = "re_" + rand()
        txn = self._txn(
            acct,
            -amount,
            ch["currency"],
            "refund",
            rid,
            description="REFUND FOR CHARGE (%s)" % (ch.get("description") or "Payment"),
        )
        r = {
            "id": rid,
            "object": "refund",
            "amount": amount,
            "balance_transaction": txn["id"],
            "charge": ch["id"],
            "created": now,
            "currency": ch["currency"],
            "destination_details": {
                "card": {
                    "reference": rand(10),
                    "reference_status": "available",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": {},
            "payment_intent": ch.get("payment_intent"),
            "reason": p.get("reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
            "customer": ch.get("customer"),
            "customer_account": None,
            "payment_method": ch.get("payment_method"),
        }
        self._apply_metadata(r, p.get("metadata"))
        self._store("refund", r, acct, index=("charge", "payment_intent"))
        before = jcopy(self._out(ch))
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
        if p.get("reverse_transfer") and ch.get("transfer"):
            tr = self.objects.get(ch["transfer"])
            if tr:
                rev_amount = min(
                    tr["amount"] - tr["amount_reversed"],
                    int(round(tr["amount"] * amount / float(ch["amount_captured"]))),
                )
                if rev_amount > 0:
                    rev = self._reverse(ctx, tr, rev_amount, {}, None, check_balance=False)
                    rev["source_refund"] = rid
                    r["transfer_reversal"] = rev["id"]
        self._emit("refund.created", r, ctx, acct)
        after = self._out(ch)
        self._emit("charge.refunded", ch, ctx, acct, self._diff(before, after))
        del pi
        return r

    REFUND_FAILURES = ("expired_or_canceled_card", "lost_or_stolen_card", "declined", "unknown")

    def fail_refund(self, rid, reason="expired_or_canceled_card"):
        """Test helper: a succeeded refund fails later, as card refunds sometimes do."""
        r = self.objects.get(rid)
        if r is None or r.get("object") != "refund":
            raise not_found("refund", rid)
        if r["status"] not in ("succeeded", "pending"):
            raise invalid("Refund %s has status %s; only a succeeded or pending refund can fail." % (rid, r["status"]))
        if reason not in self.REFUND_FAILURES:
            raise invalid("failure_reason must be one of %s" % ", ".join(self.REFUND_FAILURES), param="failure_reason")
        acct = self.owner.get(rid)
        ch = self.objects[r["charge"]]
        txn = self._txn(
            acct,
            r["amount"],
            r["currency"],
            "refund_failure",
            rid,
            description="REFUND FAILURE",
            reporting_category="refund_failure",
        )
        before = jcopy(r)
        r["status"] = "failed"
        r["failure_reason"] = reason
        r["failure_balance_transaction"] = txn["id"]
        prev = self._diff(before, r)
        ch_before = jcopy(ch)
        ch["amount_refunded"] -= r["amount"]
        ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"] > 0
        self._emit("refund.updated", r, None, acct, prev)
        self._emit("charge.refund.updated", r, None, acct, prev)
        self._emit("refund.failed", r, None, acct)
        self._emit("charge.updated", ch, None, acct, self._diff(ch_before, ch))
        return r

    def refund_retrieve(self, ctx, q, rid):
        validate(q, {"expand": STRLIST})
        return self._get("refund", "refund", rid, ctx)

    def refund_update(self, ctx, q, rid):
        p = validate(q, {"metadata": META})
        r = self._get("refund", "refund", rid, ctx)
        before = jcopy(r)
        self._apply_metadata(r, p.get("metadata"))
        prev = self._diff(before, r)
        if prev:
            acct = self.owner.get(rid)
            self._emit("refund.updated", r, ctx, acct, prev)
            self._emit("charge.refund.updated", r, ctx, acct, prev)
        return r

    def refund_list(self, ctx, q):
        ch = self._pop_str(q, "charge")
        pi = self._pop_str(q, "payment_intent")
        if ch:
            return self._list(
                ctx,
                q,
                "refund",
                "/v1/refunds",
                index=("charge", ch),
                pred=lambda o: not pi or o.get("payment_intent") == pi,
            )
        if pi:
            return self._list(ctx, q, "refund", "/v1/refunds", index=("payment_intent", pi))
        return self._list(ctx, q, "refund", "/v1/refunds")

    # ============================================================= disputes
    def open_dispute(self, ch_id, reason="fraudulent", amount=None):
        ch = self.objects.get(ch_id)
        if ch is None or ch.get("object") != "charge":
            raise not_found("charge", ch_id)
        if ch["status"] != "succeeded" or not ch["captured"]:
            raise invalid("Charge %s has not been captured, it cannot be disputed." % ch_id)
        if ch["disputed"]:
            raise invalid("Charge %s is already disputed." % ch_id, code="charge_disputed")
        acct = self.owner.get(ch_id)
        amount = amount or ch["amount_captured"]
        now = self._now()
        did = "dp_" + rand()
        txn = self._txn(
            acct,
            -amount,
            ch["currency"],
            "adjustment",
            did,
            fee=1500,
            description="Chargeback withdrawal for %s" % ch_id,
            reporting_category="dispute",
            fee_desc="Dispute fee",
        )
        d = {
            "id": did,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [jcopy(txn)],
            "charge": ch_id,
            "created": now,
            "currency": ch["currency"],
            "evidence": dict({f: None for f in EVIDENCE_FIELDS}, enhanced_evidence={}),
            "evidence_details": {
                "due_by": now + 7 * 86400,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
                "enhanced_eligibility": {},
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": ch.get("payment_intent"),
            "payment_method_details": {
                "card": {
                    "brand": ch["payment_method_details"]["card"]["brand"],
                    "case_type": "chargeback",
                    "network_reason_code": "10.4",
                },
                "type": "card",
            },
            "reason": reason or "general",
            "status": "needs_response",
            "enhanced_eligibility_types": [],
        }
        self._store("dispute", d, acct, index=("charge", "payment_intent"))
        before = jcopy(ch)
        ch["disputed"] = True
        self._emit("charge.dispute.created", d, None, acct)
        self._emit("charge.dispute.funds_withdrawn", d, None, acct)
        self._emit("charge.updated", ch, None, acct, self._diff(before, ch))
        return d

    def close_dispute(self, did, outcome, ctx=None):
        d = self.objects.get(did)
        if d is None or d.get("object") != "dispute":
            raise not_found("dispute", did)
        if d["status"] in ("won", "lost"):
            raise invalid("This dispute is already closed.", code="dispute_already_closed")
        acct = self.owner.get(did)
        before = jcopy(d)
        if outcome == "won":
            txn = self._txn(
                acct,
                d["amount"] + 1500,
                d["currency"],
                "adjustment",
                did,
                description="Chargeback reversal for %s" % d["charge"],
                reporting_category="dispute_reversal",
            )
            d["balance_transactions"].append(jcopy(txn))
            d["status"] = "won"
            self._emit("charge.dispute.funds_reinstated", d, ctx, acct)
        else:
            d["status"] = "lost"
        d["is_charge_refundable"] = False
        self._emit("charge.dispute.closed", d, ctx, acct, self._diff(before, d))
        return d

    def dispute_retrieve(self, ctx, q, did):
        validate(q, {"expand": STRLIST})
        return self._get("dispute", "dispute", did, ctx)

    def dispute_list(self, ctx, q):
        ch = self._pop_str(q, "charge")
        pi = self._pop_str(q, "payment_intent")
        if ch:
            return self._list(ctx, q, "dispute", "/v1/disputes", index=("charge", ch))
        if pi:
            return self._list(ctx, q, "dispute", "/v1/disputes", index=("payment_intent", pi))
        return self._list(ctx, q, "dispute", "/v1/disputes")

    def dispute_update(self, ctx, q, did):
        p = validate(q, {"evidence": ANY, "metadata": META, "submit": BOOL})
        d = self._get("dispute", "dispute", did, ctx)
        if d["status"] in ("won", "lost"):
            raise invalid("This dispute is already closed; evidence can no longer be submitted.")
        before = jcopy(d)
        ev = p.get("evidence")
        if ev is not None:
            if not isinstance(ev, dict):
                raise invalid("Invalid object", param="evidence")
            for k, v in ev.items():
                if k not in d["evidence"]:
                    raise ApiError(
                        400,
                        "Received unknown parameter: evidence[%s]" % k,
                        code="parameter_unknown",
                        param="evidence[%s]" % k,
                    )
                d["evidence"][k] = v or None if isinstance(v, str) else v
            d["evidence_details"]["has_evidence"] = True
        self._apply_metadata(d, p.get("metadata"))
        if p.get("submit", True) and ev is not None:
            d["status"] = "under_review"
            d["evidence_details"]["submission_count"] += 1
        prev = self._diff(before, d)
        if prev:
            self._emit("charge.dispute.updated", d, ctx, self.owner.get(did), prev)
        return d

    def dispute_close(self, ctx, q, did):
        validate(q, {})
        self._get("dispute", "dispute", did, ctx)
        return self.close_dispute(did, "lost", ctx)

    # ============================================================= accounts
    def _account_obj(self, aid, type_, country, email, business_type, caps):
        now = self._now()
        currency = COUNTRY_CURRENCY.get(country, "usd")
        req = {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(INITIAL_REQUIREMENTS),
            "disabled_reason": "requirements.past_due",
            "errors": [],
            "eventually_due": list(INITIAL_REQUIREMENTS),
            "past_due": list(INITIAL_REQUIREMENTS),
            "pending_verification": [],
        }
        controller = (
            {"type": "account"}
            if type_ == "standard"
            else {
                "fees": {"payer": "application"},
                "is_controller": True,
                "losses": {"payments": "application"},
                "requirement_collection": "stripe" if type_ == "express" else "application",
                "stripe_dashboard": {"type": "express" if type_ == "express" else "none"},
                "type": "application",
            }
        )
        return {
            "id": aid,
            "object": "account",
            "business_profile": {
                "annual_revenue": None,
                "estimated_worker_count": None,
                "mcc": None,
                "name": None,
                "product_description": None,
                "support_address": None,
                "support_email": None,
                "support_phone": None,
                "support_url": None,
                "url": None,
                "minority_owned_business_designation": None,
            },
            "business_type": business_type,
            "capabilities": caps,
            "charges_enabled": False,
            "controller": controller,
            "country": country,
            "created": now,
            "default_currency": currency,
            "details_submitted": False,
            "email": email,
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": "/v1/accounts/%s/external_accounts" % aid,
            },
            "future_requirements": {
                "alternatives": [],
                "current_deadline": None,
                "currently_due": [],
                "disabled_reason": None,
                "errors": [],
                "eventually_due": [],
                "past_due": [],
                "pending_verification": [],
            },
            "metadata": {},
            "payouts_enabled": False,
            "requirements": req,
            "settings": {
                "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
                "card_payments": {
                    "decline_on": {"avs_failure": False, "cvc_failure": False},
                    "statement_descriptor_prefix": None,
                    "statement_descriptor_prefix_kana": None,
                    "statement_descriptor_prefix_kanji": None,
                },
                "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
                "payments": {
                    "statement_descriptor": None,
                    "statement_descriptor_kana": None,
                    "statement_descriptor_kanji": None,
                },
                "payouts": {
                    "debit_negative_balances": True,
                    "schedule": {"delay_days": 2, "interval": "daily"},
                    "statement_descriptor": None,
                },
            },
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
            "type": type_,
        }

    ACCOUNT_SPEC = {
        "type": enum("express", "custom", "standard", "none"),
        "country": STR,
        "email": STR,
        "business_type": enum("individual", "company", "non_profit", "government_entity", None),
        "capabilities": ANY,
        "metadata": META,
        "business_profile": ANY,
        "default_currency": STR,
        "tos_acceptance": ANY,
        "external_account": ANY,
        "settings": ANY,
        "individual": ANY,
        "company": ANY,
        "controller": ANY,
        "account_token": STR,
        "documents": ANY,
        "groups": ANY,
    }

    def _apply_account_params(self, a, p):
        if "email" in p:
            a["email"] = p["email"] or None
        if "business_type" in p:
            a["business_type"] = p["business_type"]
        if "default_currency" in p and p["default_currency"]:
            a["default_currency"] = self._check_currency(p["default_currency"], "default_currency")
        bp = p.get("business_profile")
        if isinstance(bp, dict):
            for k, v in bp.items():
                if k not in a["business_profile"]:
                    raise ApiError(
                        400,
                        "Received unknown parameter: business_profile[%s]" % k,
                        code="parameter_unknown",
                        param="business_profile[%s]" % k,
                    )
                a["business_profile"][k] = v or None if isinstance(v, str) else v
        caps = p.get("capabilities")
        if caps is not None:
            if not isinstance(caps, dict):
                raise invalid("Invalid object", param="capabilities")
            for name, spec in caps.items():
                if not isinstance(spec, dict) or set(spec) - {"requested"}:
                    raise invalid(
                        "Invalid capabilities[%s]: expected requested" % name, param="capabilities[%s]" % name
                    )
                req = str(spec.get("requested", "")).lower() == "true"
                if req:
                    if a["capabilities"].get(name) != "active":
                        a["capabilities"][name] = (
                            "active" if a["details_submitted"] and a["payouts_enabled"] else "inactive"
                        )
                else:
                    a["capabilities"].pop(name, None)
        tos = p.get("tos_acceptance")
        if isinstance(tos, dict):
            for k in ("date", "ip", "user_agent"):
                if k in tos:
                    a["tos_acceptance"][k] = int(tos[k]) if k == "date" and str(tos[k]).isdigit() else tos[k]
        self._apply_metadata(a, p.get("metadata"))

    def account_create(self, ctx, q):
        if ctx.account:
            raise invalid("You cannot create connected accounts on behalf of a connected account.")
        p = validate(q, self.ACCOUNT_SPEC)
        type_ = p.get("type")
        if not type_:
            if isinstance(p.get("controller"), dict):
                type_ = "custom" if p["controller"].get("requirement_collection") == "application" else "express"
            else:
                raise ApiError(400, "Missing required param: type.", code="parameter_missing", param="type")
        if type_ == "none":
            type_ = "custom"
        country = (p.get("country") or "US").upper()
        if country not in COUNTRY_CURRENCY:
            raise invalid(
                "Country '%s' is unknown. Try using a 2-character alphanumeric country code instead, such "
                "as 'US', 'EG', or 'GB'." % p.get("country"),
                param="country",
            )
        if p.get("email"):
            self._check_email(p)
        aid = "acct_" + rand(16)
        a = self._account_obj(aid, type_, country, None, None, {})
        self._apply_account_params(a, p)
        self._store("account", a, None)
        self.internal[aid] = {"bank": "ba_" + rand()}
        return a

    def _onboard_fields(self, a):
        a["details_submitted"] = True
        a["charges_enabled"] = True
        a["payouts_enabled"] = True
        for f in ("currently_due", "eventually_due", "past_due", "pending_verification", "errors"):
            a["requirements"][f] = []
        a["requirements"]["disabled_reason"] = None
        a["requirements"]["current_deadline"] = None
        caps = a["capabilities"]
        for name in list(caps) + ["transfers", "card_payments"]:
            caps[name] = "active"
        if a["tos_acceptance"]["date"] is None:
            a["tos_acceptance"] = {"date": self._now(), "ip": "127.0.0.1", "user_agent": "stripe-emulator"}
        if not a["external_accounts"]["data"] and a["id"] in self.internal:
            bank = {
                "id": self.internal[a["id"]]["bank"],
                "object": "bank_account",
                "account": a["id"],
                "account_holder_name": None,
                "account_holder_type": None,
                "account_type": None,
                "available_payout_methods": ["standard"],
                "bank_name": "STRIPE TEST BANK",
                "country": a["country"],
                "currency": a["default_currency"],
                "default_for_currency": True,
                "fingerprint": rand(16),
                "last4": "6789",
                "metadata": {},
                "routing_number": "110000000",
                "status": "new",
            }
            a["external_accounts"] = dict(a["external_accounts"], data=[bank], total_count=1)

    def onboard_account(self, aid):
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", aid)
        before = jcopy(a)
        self._onboard_fields(a)
        prev = self._diff(before, a)
        if prev:
            self._emit("account.updated", a, None, aid, prev)
        return a

    def restrict_account(self, aid, fields=None):
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", aid)
        before = jcopy(a)
        due = list(fields or ["external_account", "individual.verification.document"])
        a["payouts_enabled"] = False
        a["requirements"]["currently_due"] = list(due)
        a["requirements"]["past_due"] = list(due)
        a["requirements"]["eventually_due"] = list(due)
        a["requirements"]["disabled_reason"] = "requirements.past_due"
        a["requirements"]["current_deadline"] = None
        if "transfers" in a["capabilities"]:
            a["capabilities"]["transfers"] = "inactive"
        prev = self._diff(before, a)
        if prev:
            self._emit("account.updated", a, None, aid, prev)
        return a

    def _connected(self, ctx, aid, param="id", status=404):
        if ctx.account and aid != ctx.account:
            raise not_found("account", aid, param, status)
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            if aid == self.platform_account["id"]:
                return self.platform_account
            raise not_found("account", aid, param, status)
        return a

    def account_retrieve(self, ctx, q, aid):
        validate(q, {"expand": STRLIST})
        a = self.objects.get(aid)
        if a is not None and a.get("object") == "account" and a.get("deleted") and not ctx.account:
            return {"id": aid, "object": "account", "deleted": True}
        return self._connected(ctx, aid)

    def account_self(self, ctx, q):
        validate(q, {"expand": STRLIST})
        if ctx.account:
            return self.objects[ctx.account]
        return self.platform_account

    def account_update(self, ctx, q, aid):
        p = validate(q, {k: v for k, v in self.ACCOUNT_SPEC.items() if k not in ("type", "country", "controller")})
        a = self._connected(ctx, aid)
        if a is self.platform_account:
            raise invalid("You cannot update the platform account through this emulator.")
        before = jcopy(a)
        if p.get("email"):
            self._check_email(p)
        self._apply_account_params(a, p)
        prev = self._diff(before, a)
        if prev:
            self._emit("account.updated", a, ctx, aid, prev)
        return a

    def account_delete(self, ctx, q, aid):
        validate(q, {})
        a = self._connected(ctx, aid)
        if a is self.platform_account:
            raise invalid("You cannot delete the platform account.")
        a["deleted"] = True
        return {"id": aid, "object": "account", "deleted": True}

    def account_list(self, ctx, q):
        return self._list(ctx, q, "account", "/v1/accounts")

    def account_link_create(self, ctx, q):
        p = validate(
            q,
            {
                "account": STR,
                "refresh_url": STR,
                "return_url": STR,
                "type": enum("account_onboarding", "account_update"),
                "collect": enum("currently_due", "eventually_due"),
                "collection_options": ANY,
            },
        )
        require(p, "account", "type")
        a = self._connected(ctx, p["account"], "account", 400)
        if p["type"] == "account_update" and a.get("type") in ("express", "standard"):
            raise invalid(
                "You cannot create `account_update` type Account Links for Express or Standard accounts.", param="type"
            )
        for f in ("refresh_url", "return_url"):
            if not p.get(f):
                raise ApiError(400, "Missing required param: %s." % f, code="parameter_missing", param=f)
            if not (p[f].startswith("http://") or p[f].startswith("https://")):
                raise invalid("Not a valid URL", param=f, code="url_invalid")
        now = self._now()
        url = "%s/_emulator/onboarding/%s?%s" % (
            ctx.base_url,
            a["id"],
            urllib.parse.urlencode({"return_url": p["return_url"], "refresh_url": p["refresh_url"], "link": rand(12)}),
        )
        return {"object": "account_link", "created": now, "expires_at": now + 300, "url": url}

    # ============================================================ transfers
    def _make_transfer(self, ctx, amount, currency, dest, group, source_tx, metadata, description, pending_src=False):
        tid = "tr_" + rand()
        now = self._now()
        txn = self._txn(None, -amount, currency, "transfer", tid, description=description, pending=pending_src)
        py = "py_" + rand()
        pending_dest = self.config["funds_pending"] and pending_src
        self._txn(dest, amount, currency, "payment", py, description=description, pending=pending_dest)
        tr = {
            "id": tid,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": txn["id"],
            "created": now,
            "currency": currency,
            "description": description,
            "destination": dest,
            "destination_payment": py,
            "livemode": False,
            "metadata": dict(metadata or {}),
            "reversed": False,
            "source_transaction": source_tx,
            "source_type": "card",
            "transfer_group": group,
        }
        self._store("transfer", tr, None, index=("destination", "transfer_group", "source_transaction"))
        self._emit("transfer.created", tr, ctx, None)
        return tr

    def transfer_create(self, ctx, q):
        p = validate(
            q,
            {
                "amount": INT,
                "currency": STR,
                "destination": STR,
                "transfer_group": STR,
                "source_transaction": STR,
                "metadata": META,
                "description": STR,
                "source_type": enum("bank_account", "card", "fpx"),
            },
        )
        if ctx.account:
            raise invalid("Transfers can only be created by the platform.")
        require(p, "amount", "currency", "destination")
        currency = self._check_currency(p["currency"])
        amount = p["amount"]
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        dest = self.objects.get(p["destination"])
        if dest is None or dest.get("object") != "account" or dest.get("deleted"):
            raise not_found("destination", p["destination"], "destination", 400)
        if dest["capabilities"].get("transfers") != "active":
            raise invalid(
                "Your destination account needs to have at least one of the following capabilities "
                "enabled: transfers, crypto_transfers, legacy_payments",
                param="destination",
                code="insufficient_capabilities_for_transfer",
            )
        pending_src = False
        if p.get("source_transaction"):
            ch = self.objects.get(p["source_transaction"])
            if ch is None or ch.get("object") != "charge" or self.owner.get(ch["id"]) is not None:
                raise not_found("charge", p["source_transaction"], "source_transaction", 400)
            if ch["status"] != "succeeded" or not ch["captured"]:
                raise invalid("The source_transaction charge has not succeeded.", param="source_transaction")
            if ch["currency"] != currency:
                raise invalid(
                    "The currency of source_transaction's balance transaction (%s) must be the same as "
                    "the transfer currency (%s)" % (ch["currency"], currency),
                    param="currency",
                )
            used = self.internal[ch["id"]]["transferred"]
            avail = ch["amount_captured"] - ch["amount_refunded"] - used
            if amount > avail:
                raise ApiError(
                    400,
                    "Transfer amount exceeds the available amount of source_transaction (%d)." % avail,
                    param="amount",
                    code="balance_insufficient",
                )
            self.internal[ch["id"]]["transferred"] = used + amount
            pending_src = self._txn_pending(ch)
        else:
            if self._bal(None, currency)["available"] < amount:
                raise ApiError(
                    400,
                    "You have insufficient available funds in your Stripe account. Try adding "
                    "funds directly to your available balance by creating Charges using the "
                    "4000000000000077 test card. See: https://stripe.com/docs/testing#available-balance",
                    code="balance_insufficient",
                )
        md = p.get("metadata") if isinstance(p.get("metadata"), dict) else {}
        return self._make_transfer(
            ctx,
            amount,
            currency,
            dest["id"],
            p.get("transfer_group") or None,
            p.get("source_transaction") or None,
            {k: v for k, v in md.items() if v != ""},
            p.get("description") or None,
            pending_src,
        )

    def transfer_retrieve(self, ctx, q, tid):
        validate(q, {"expand": STRLIST})
        return self._get("transfer", "transfer", tid, ctx)

    def transfer_update(self, ctx, q, tid):
        p = validate(q, {"metadata": META, "description": STR})
        tr = self._get("transfer", "transfer", tid, ctx)
        before = jcopy(tr)
        if "description" in p:
            tr["description"] = p["description"] or None
        self._apply_metadata(tr, p.get("metadata"))
        prev = self._diff(before, tr)
        if prev:
            self._emit("transfer.updated", tr, ctx, None, prev)
        return tr

    def transfer_list(self, ctx, q):
        dest = self._pop_str(q, "destination")
        tg = self._pop_str(q, "transfer_group")
        if tg:
            return self._list(
                ctx,
                q,
                "transfer",
                "/v1/transfers",
                index=("transfer_group", tg),
                pred=lambda o: not dest or o["destination"] == dest,
            )
        if dest:
            return self._list(ctx, q, "transfer", "/v1/transfers", index=("destination", dest))
        return self._list(ctx, q, "transfer", "/v1/transfers")

    def _reverse(self, ctx, tr, amount, metadata, description, check_balance=True):
        dest = tr["destination"]
        if check_balance and self._bal(dest, tr["currency"])["available"] < amount:
            raise ApiError(
                400,
                "Insufficient funds in the connected account to reverse this transfer "
                "(the connected account's available balance cannot cover %d %s)." % (amount, tr["currency"]),
                code="balance_insufficient",
            )
        rid = "trr_" + rand()
        pyr = "pyr_" + rand()
        self._txn(
            dest,
            -amount,
            tr["currency"],
            "payment_refund",
            pyr,
            description=description,
            reporting_category="transfer_reversal",
        )
        txn = self._txn(
            None,
            amount,
            tr["currency"],
            "transfer_refund",
            rid,
            description=description,
            reporting_category="transfer_reversal",
        )
        rev = {
            "id": rid,
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": txn["id"],
            "created": self._now(),
            "currency": tr["currency"],
            "destination_payment_refund": pyr,
            "metadata": dict(metadata or {}),
            "source_refund": None,
            "transfer": tr["id"],
        }
        self._store("transfer_reversal", rev, None, index=("transfer",))
        before = jcopy(tr)
        tr["amount_reversed"] += amount
        tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
        prev = self._diff(before, tr)
        self._emit("transfer.reversed", tr, ctx, None, prev)
        return rev

    def reversal_create(self, ctx, q, tid):
        p = validate(q, {"amount": INT, "metadata": META, "description": STR, "refund_application_fee": BOOL})
        tr = self._get("transfer", "transfer", tid, ctx)
        remaining = tr["amount"] - tr["amount_reversed"]
        if remaining <= 0:
            raise invalid("Transfer %s has already been fully reversed." % tid, code="transfer_already_reversed")
        amount = p.get("amount", remaining)
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise invalid(
                "Reversal amount (%d) exceeds the amount remaining on the transfer (%d)." % (amount, remaining),
                param="amount",
                code="amount_too_large",
            )
        md = p.get("metadata") if isinstance(p.get("metadata"), dict) else {}
        return self._reverse(ctx, tr, amount, {k: v for k, v in md.items() if v != ""}, p.get("description"))

    def reversal_list(self, ctx, q, tid):
        self._get("transfer", "transfer", tid, ctx)
        return self._list(ctx, q, "transfer_reversal", "/v1/transfers/%s/reversals" % tid, index=("transfer", tid))

    def reversal_retrieve(self, ctx, q, tid, rid):
        validate(q, {"expand": STRLIST})
        self._get("transfer", "transfer", tid, ctx)
        r = self._get("transfer_reversal", "transfer_reversal", rid, ctx)
        if r["transfer"] != tid:
            raise not_found("transfer_reversal", rid)
        return r

    def reversal_update(self, ctx, q, tid, rid):
        p = validate(q, {"metadata": META})
        r = self.reversal_retrieve(ctx, {}, tid, rid)
        self._apply_metadata(r, p.get("metadata"))
        return r

    # ============================================================== balance
    def balance_obj(self, account):
        b = self.balances.get(account) or {}
        if not b:
            cur = self.objects[account]["default_currency"] if account else "usd"
            b = {cur: {"available": 0, "pending": 0}}
        avail = [
            {"amount": v["available"], "currency": c, "source_types": {"card": v["available"]}}
            for c, v in sorted(b.items())
        ]
        pend = [
            {"amount": v["pending"], "currency": c, "source_types": {"card": v["pending"]}}
            for c, v in sorted(b.items())
        ]
        out = {"object": "balance", "available": avail, "livemode": False, "pending": pend}
        if account is None:
            out["connect_reserved"] = [{"amount": 0, "currency": c} for c in sorted(b)]
        return out

    def balance_retrieve(self, ctx, q):
        validate(q, {"expand": STRLIST})
        return self.balance_obj(ctx.account)

    def txn_retrieve(self, ctx, q, tid):
        validate(q, {"expand": STRLIST})
        return self._get("balance_transaction", "balance transaction", tid, ctx)

    def txn_list(self, ctx, q):
        t = self._pop_str(q, "type")
        src = self._pop_str(q, "source")
        cur = self._pop_str(q, "currency")
        payout = self._pop_str(q, "payout")
        if src:
            return self._list(
                ctx,
                q,
                "balance_transaction",
                "/v1/balance_transactions",
                index=("source", src),
                pred=lambda o: (not t or o["type"] == t) and (not cur or o["currency"] == cur),
            )
        if payout:
            po = self.objects.get(payout)
            ids = set(self.internal.get(payout, {}).get("txns", [])) if po else set()
            return self._list(ctx, q, "balance_transaction", "/v1/balance_transactions", pred=lambda o: o["id"] in ids)
        if t:
            return self._list(
                ctx,
                q,
                "balance_transaction",
                "/v1/balance_transactions",
                index=("type", t),
                pred=lambda o: not cur or o["currency"] == cur,
            )
        return self._list(
            ctx,
            q,
            "balance_transaction",
            "/v1/balance_transactions",
            pred=(lambda o: o["currency"] == cur) if cur else None,
        )

    def settle(self):
        """Move every pending balance to available (platform and connected)."""
        moved = []
        for oid in self.order["balance_transaction"]:
            t = self.objects[oid]
            if t["status"] == "pending":
                t["status"] = "available"
                t["available_on"] = self._now()
                b = self._bal(self.owner.get(oid), t["currency"])
                b["pending"] -= t["net"]
                b["available"] += t["net"]
                moved.append(self.owner.get(oid))
        for acct in dict.fromkeys(moved):
            self._emit("balance.available", self.balance_obj(acct), None, acct)
        return len(moved)

    def topup(self, amount, currency, account=None):
        txn = self._txn(account, amount, currency, "topup", "tu_" + rand(), description="Emulator top-up")
        self._emit("balance.available", self.balance_obj(account), None, account)
        return txn

    # ============================================================== payouts
    def payout_create(self, ctx, q):
        p = validate(
            q,
            {
                "amount": INT,
                "currency": STR,
                "description": STR,
                "metadata": META,
                "statement_descriptor": STR,
                "method": enum("standard", "instant"),
                "destination": STR,
                "source_type": enum("bank_account", "card", "fpx"),
                "payout_method": STR,
            },
        )
        require(p, "amount", "currency")
        currency = self._check_currency(p["currency"])
        amount = p["amount"]
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        acct = ctx.account
        if acct:
            a = self.objects[acct]
            if not a["payouts_enabled"]:
                raise invalid(
                    "Payouts are not enabled for this account; its requirements are past due.",
                    code="payouts_not_allowed",
                )
            dest = self.internal.get(acct, {}).get("bank")
        else:
            dest = "ba_platform"
        if p.get("destination"):
            dest = p["destination"]
        if self._bal(acct, currency)["available"] < amount:
            raise ApiError(
                400,
                "You have insufficient funds in your Stripe account for this transfer. Your card "
                "balance is too low. You can use the /v1/balance endpoint to view your Stripe "
                "balance (for more details, see stripe.com/docs/api#balance).",
                code="balance_insufficient",
            )
        pid = "po_" + rand()
        now = self._now()
        txn = self._txn(acct, -amount, currency, "payout", pid, description=p.get("description") or "STRIPE PAYOUT")
        po = {
            "id": pid,
            "object": "payout",
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": now + 86400 * (0 if p.get("method") == "instant" else 2),
            "automatic": False,
            "balance_transaction": txn["id"],
            "created": now,
            "currency": currency,
            "description": p.get("description") or None,
            "destination": dest,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "method": p.get("method") or "standard",
            "original_payout": None,
            "reconciliation_status": "not_applicable",
            "reversed_by": None,
            "source_type": p.get("source_type") or "card",
            "statement_descriptor": p.get("statement_descriptor") or None,
            "status": "pending",
            "type": "bank_account",
            "trace_id": {"status": "pending", "value": None},
            "payout_method": None,
        }
        self._apply_metadata(po, p.get("metadata"))
        self._store("payout", po, acct)
        self.internal[pid] = {"txns": [txn["id"]]}
        fail = None
        for i, f in enumerate(self.payout_fail_next):
            if f.get("account") in (None, acct):
                fail = f.get("failure_code") or "account_closed"
                f["count"] -= 1
                if f["count"] <= 0:
                    self.payout_fail_next.pop(i)
                break
        if fail is None and acct in self.payout_fail_accounts:
            fail = self.payout_fail_accounts[acct]
        self.internal[pid]["fail"] = fail
        self._emit("payout.created", po, ctx, acct)
        self.scheduler.schedule(self.config["payout_delay"] * self.config["time_scale"], self._finish_payout, pid)
        return po

    FAILURE_MESSAGES = {
        "account_closed": "The bank account has been closed.",
        "account_frozen": "The bank account has been frozen.",
        "no_account": "The bank account details on file are probably incorrect. No bank account could be located "
        "with those details.",
        "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
        "invalid_account_number": "The routing number seems correct, but the account number is invalid.",
        "could_not_process": "The bank could not process this payout.",
    }

    def _finish_payout(self, pid):
        with self.lock:
            self.finish_payout(pid)

    def finish_payout(self, pid, force_fail=None):
        po = self.objects.get(pid)
        if po is None or po["status"] not in ("pending", "in_transit"):
            return po
        acct = self.owner.get(pid)
        fail = force_fail or self.internal.get(pid, {}).get("fail")
        before = jcopy(po)
        if fail:
            txn = self._txn(
                acct,
                po["amount"],
                po["currency"],
                "payout_failure",
                pid,
                description="Payout failure (%s)" % fail,
                reporting_category="payout_reversal",
            )
            self.internal[pid]["txns"].append(txn["id"])
            po["status"] = "failed"
            po["failure_code"] = fail
            po["failure_message"] = self.FAILURE_MESSAGES.get(fail, "The payout failed.")
            po["failure_balance_transaction"] = txn["id"]
            po["trace_id"] = {"status": "unsupported", "value": None}
            self._emit("payout.updated", po, None, acct, self._diff(before, po))
            self._emit("payout.failed", po, None, acct)
        else:
            po["status"] = "paid"
            po["reconciliation_status"] = "completed"
            po["trace_id"] = {"status": "supported", "value": "TRACE" + rand(10).upper()}
            self._emit("payout.updated", po, None, acct, self._diff(before, po))
            self._emit("payout.paid", po, None, acct)
        return po

    def payout_retrieve(self, ctx, q, pid):
        validate(q, {"expand": STRLIST})
        return self._get("payout", "payout", pid, ctx)

    def payout_update(self, ctx, q, pid):
        p = validate(q, {"metadata": META})
        po = self._get("payout", "payout", pid, ctx)
        before = jcopy(po)
        self._apply_metadata(po, p.get("metadata"))
        prev = self._diff(before, po)
        if prev:
            self._emit("payout.updated", po, ctx, ctx.account, prev)
        return po

    def payout_cancel(self, ctx, q, pid):
        validate(q, {})
        po = self._get("payout", "payout", pid, ctx)
        if po["status"] != "pending":
            raise invalid("Payouts can only be canceled while they are pending (status: %s)." % po["status"])
        txn = self._txn(
            ctx.account, po["amount"], po["currency"], "payout_cancel", pid, description="Payout cancellation"
        )
        self.internal[pid]["txns"].append(txn["id"])
        before = jcopy(po)
        po["status"] = "canceled"
        self._emit("payout.canceled", po, ctx, ctx.account)
        self._emit("payout.updated", po, ctx, ctx.account, self._diff(before, po))
        return po

    def payout_list(self, ctx, q):
        st = self._pop_str(q, "status")
        dest = self._pop_str(q, "destination")
        self._pop_str(q, "arrival_date")
        return self._list(
            ctx,
            q,
            "payout",
            "/v1/payouts",
            pred=lambda o: (not st or o["status"] == st) and (not dest or o["destination"] == dest),
        )

    # =============================================================== events
    def event_list(self, ctx, q):
        t = self._pop_str(q, "type")
        types = self._pop_str(q, "types")
        self._pop_str(q, "delivery_success")
        if t and "*" in t:
            prefix = t.replace("*", "")
            return self._list(ctx, q, "event", "/v1/events", pred=lambda o: o["type"].startswith(prefix))
        if t:
            return self._list(ctx, q, "event", "/v1/events", index=("type", t))
        if types:
            if len(types) > 20:
                raise invalid("You may pass at most 20 types.", param="types")
            ts = set(types)
            return self._list(ctx, q, "event", "/v1/events", pred=lambda o: o["type"] in ts)
        return self._list(ctx, q, "event", "/v1/events")

    def event_retrieve(self, ctx, q, eid):
        validate(q, {"expand": STRLIST})
        return self._get("event", "event", eid, ctx)

    # ===================================================== webhook endpoints
    def _create_endpoint(
        self, url, events, secret=None, description=None, metadata=None, api_version=None, connect=False
    ):
        we = {
            "id": "we_" + rand(),
            "object": "webhook_endpoint",
            "api_version": api_version,
            "application": None,
            "created": self._now(),
            "description": description,
            "enabled_events": list(events),
            "livemode": False,
            "metadata": dict(metadata or {}),
            "status": "enabled",
            "url": url,
        }
        self._store("webhook_endpoint", we, None)
        self.webhook_secrets[we["id"]] = secret or ("whsec_" + rand(32))
        self.endpoints.append(we["id"])
        return we

    @staticmethod
    def _check_url(url, param="url"):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise invalid("Invalid URL: %s" % url, param=param, code="url_invalid")

    def we_create(self, ctx, q):
        p = validate(
            q,
            {
                "url": STR,
                "enabled_events": STRLIST,
                "description": STR,
                "metadata": META,
                "api_version": STR,
                "connect": BOOL,
            },
        )
        require(p, "url")
        if not p.get("enabled_events"):
            raise ApiError(
                400, "Missing required param: enabled_events.", code="parameter_missing", param="enabled_events"
            )
        self._check_url(p["url"])
        we = self._create_endpoint(
            p["url"], p["enabled_events"], None, p.get("description") or None, None, p.get("api_version") or None
        )
        self._apply_metadata(we, p.get("metadata"))
        out = dict(we)
        out["secret"] = self.webhook_secrets[we["id"]]
        return out

    def we_retrieve(self, ctx, q, wid):
        validate(q, {"expand": STRLIST})
        return self._get("webhook_endpoint", "webhook_endpoint", wid, None if not ctx.account else ctx)

    def we_update(self, ctx, q, wid):
        p = validate(q, {"url": STR, "enabled_events": STRLIST, "description": STR, "metadata": META, "disabled": BOOL})
        we = self._get("webhook_endpoint", "webhook_endpoint", wid, ctx)
        if p.get("url"):
            self._check_url(p["url"])
            we["url"] = p["url"]
        if "enabled_events" in p:
            if not p["enabled_events"]:
                raise invalid("enabled_events cannot be empty", param="enabled_events")
            we["enabled_events"] = p["enabled_events"]
        if "description" in p:
            we["description"] = p["description"] or None
        if "disabled" in p:
            we["status"] = "disabled" if p["disabled"] else "enabled"
        self._apply_metadata(we, p.get("metadata"))
        return we

    def we_delete(self, ctx, q, wid):
        validate(q, {})
        we = self._get("webhook_endpoint", "webhook_endpoint", wid, ctx)
        we["deleted"] = True
        if wid in self.endpoints:
            self.endpoints.remove(wid)
        return {"id": wid, "object": "webhook_endpoint", "deleted": True}

    def we_list(self, ctx, q):
        return self._list(ctx, q, "webhook_endpoint", "/v1/webhook_endpoints")
