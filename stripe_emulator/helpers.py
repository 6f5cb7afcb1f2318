"""The /_emulator/... test-helper and fault-injection API (JSON in, JSON out, no auth)."""

import html
import json
import random
import urllib.parse

from .params import ApiError

FLOAT_KEYS = {
    "time_scale",
    "chaos_duplicate",
    "chaos_reorder",
    "chaos_delay",
    "chaos_max_delay",
    "chaos_reorder_release",
    "webhook_retry_base",
    "webhook_timeout",
    "dispute_delay",
    "capture_delay",
    "payout_delay",
    "hang_seconds",
    "funds_delay",
}
PROB_KEYS = {"chaos_duplicate", "chaos_reorder", "chaos_delay"}
INT_KEYS = {"webhook_max_attempts"}
BOOL_KEYS = {"funds_pending", "quiet"}


def _resp(emu, status, payload, headers=()):
    return emu._json(status, payload, headers)


def _err(emu, status, message, param=None):
    e = {"type": "invalid_request_error", "message": message}
    if param:
        e["param"] = param
    return _resp(emu, status, {"error": e})


def _bool(v):
    if isinstance(v, bool):
        return v
    return str(v).lower() in ("1", "true", "yes", "on")


def handle_helper(emu, method, path, qs, headers, body):
    data = {}
    for k, v in urllib.parse.parse_qsl(qs, keep_blank_values=True):
        data[k] = v
    if body:
        ctype = headers.get("content-type", "")
        try:
            if "application/x-www-form-urlencoded" in ctype:
                for k, v in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True):
                    data[k] = v
            else:
                parsed = json.loads(body.decode("utf-8"))
                if not isinstance(parsed, dict):
                    return _err(emu, 400, "Expected a JSON object body.")
                data.update(parsed)
        except (ValueError, UnicodeDecodeError):
            return _err(emu, 400, "Body is not valid JSON.")
    parts = [urllib.parse.unquote(p) for p in path.split("/")[2:] if p]
    try:
        return _dispatch(emu, method, parts, data, headers)
    except ApiError as e:
        return _resp(emu, e.status, e.body())
    except (TypeError, ValueError, KeyError) as e:
        return _err(emu, 400, "Bad helper request: %s" % (e,))


def _dispatch(emu, method, parts, data, headers):
    n = len(parts)
    head = parts[0] if parts else ""
    if head == "health" and method in ("GET", "HEAD"):
        return _resp(emu, 200, {"status": "ok"})
    if head == "reset" and method == "POST":
        emu.reset(
            keep_webhooks=_bool(data.get("keep_webhooks", False)), reset_config=_bool(data.get("reset_config", True))
        )
        return _resp(emu, 200, {"status": "ok", "reset": True})
    if head == "config":
        if method == "GET":
            return _resp(emu, 200, dict(emu.config))
        if method == "POST":
            new = {}
            for k, v in data.items():
                if k in FLOAT_KEYS:
                    v = float(v)
                    if v < 0 or (k in PROB_KEYS and v > 1) or (k == "time_scale" and v <= 0):
                        return _err(emu, 400, "Invalid value for %s" % k, k)
                elif k in INT_KEYS:
                    v = int(v)
                    if v < 1:
                        return _err(emu, 400, "Invalid value for %s" % k, k)
                elif k in BOOL_KEYS:
                    v = _bool(v)
                elif k == "seed":
                    v = None if v is None else int(v)
                else:
                    return _err(emu, 400, "Unknown config key: %s" % k, k)
                new[k] = v
            with emu.lock:
                emu.config.update(new)
                if "seed" in new:
                    emu.rng = random.Random(new["seed"])
            return _resp(emu, 200, dict(emu.config))
    if head == "faults":
        if method == "DELETE":
            with emu.fault_lock:
                emu.faults = []
            emu.hang_abort.set()
            import threading

            emu.hang_abort = threading.Event()
            return _resp(emu, 200, {"faults": []})
        if method == "GET":
            return _resp(emu, 200, {"faults": list(emu.faults)})
        if method == "POST":
            mode = str(data.get("mode", "500"))
            if mode not in ("500", "502", "503", "429", "409", "hang"):
                return _err(emu, 400, "mode must be one of 500, 502, 503, 429, 409, hang", "mode")
            fault = {
                "mode": mode,
                "remaining": int(data.get("count", 1)),
                "path_prefix": data.get("path_prefix") or None,
            }
            if "seconds" in data:
                fault["seconds"] = float(data["seconds"])
            if "should_retry" in data:
                fault["should_retry"] = _bool(data["should_retry"])
            with emu.fault_lock:
                emu.faults.append(fault)
            return _resp(emu, 200, {"faults": list(emu.faults)})
    if head == "webhooks":
        sub = parts[1] if n > 1 else ""
        if sub == "deliveries" and method == "GET":
            items = emu.deliverer.deliveries(data.get("event_id"), data.get("endpoint_id"))
            return _resp(emu, 200, {"object": "list", "data": items, "count": len(items)})
        if sub == "flush" and method == "POST":
            timeout = float(data.get("timeout", 10))
            ok = emu.work.wait_idle(timeout)
            return _resp(emu, 200 if ok else 504, {"drained": ok, "outstanding": emu.work.outstanding})
        if sub == "register" and method == "POST":
            url = data.get("url")
            if not url:
                return _err(emu, 400, "Missing url", "url")
            events = data.get("enabled_events") or ["*"]
            with emu.lock:
                emu._check_url(url)
                we = emu._create_endpoint(
                    url,
                    events,
                    data.get("secret") or None,
                    data.get("description"),
                    connect=_bool(data.get("connect", False)),
                )
                out = dict(we, secret=emu.webhook_secrets[we["id"]])
            return _resp(emu, 200, out)
    if head == "payment_intents" and n == 3 and parts[2] == "3ds" and method == "POST":
        outcome = data.get("outcome", "succeed")
        if outcome not in ("succeed", "fail"):
            return _err(emu, 400, "outcome must be succeed or fail", "outcome")
        with emu.lock:
            pi = emu.complete_3ds(parts[1], outcome)
            return _resp(emu, 200, emu._out(pi))
    if head == "3ds" and n == 2 and method == "GET":
        # target of next_action URLs: completes (or fails with ?outcome=fail) the challenge
        outcome = data.get("outcome", "succeed")
        with emu.lock:
            pi = emu.complete_3ds(parts[1], "fail" if outcome == "fail" else "succeed")
            ret = emu.internal.get(pi["id"], {}).get("return_url")
        if ret:
            sep = "&" if "?" in ret else "?"
            loc = (
                ret
                + sep
                + urllib.parse.urlencode(
                    {"payment_intent": pi["id"], "payment_intent_client_secret": pi["client_secret"]}
                )
            )
            return 302, [("Location", loc), ("Content-Type", "text/plain")], b"Redirecting"
        return _resp(emu, 200, {"status": pi["status"], "payment_intent": pi["id"]})
    if head == "charges" and n == 3 and parts[2] == "dispute" and method == "POST":
        with emu.lock:
            d = emu.open_dispute(
                parts[1], data.get("reason") or "fraudulent", int(data["amount"]) if data.get("amount") else None
            )
            return _resp(emu, 200, emu._out(d))
    if head == "refunds" and n == 3 and parts[2] == "fail" and method == "POST":
        with emu.lock:
            r = emu.fail_refund(parts[1], data.get("failure_reason") or "expired_or_canceled_card")
            return _resp(emu, 200, r)
    if head == "disputes" and n == 3 and parts[2] == "close" and method == "POST":
        outcome = data.get("outcome", "lost")
        if outcome not in ("won", "lost"):
            return _err(emu, 400, "outcome must be won or lost", "outcome")
        with emu.lock:
            return _resp(emu, 200, emu.close_dispute(parts[1], outcome))
    if head == "accounts" and n == 3 and method == "POST":
        aid, action = parts[1], parts[2]
        with emu.lock:
            if action == "onboard":
                return _resp(emu, 200, emu.onboard_account(aid))
            if action == "restrict":
                return _resp(emu, 200, emu.restrict_account(aid, data.get("fields")))
            if action == "payouts_fail":
                if _bool(data.get("enabled", True)):
                    emu.payout_fail_accounts[aid] = data.get("failure_code") or "account_closed"
                else:
                    emu.payout_fail_accounts.pop(aid, None)
                return _resp(emu, 200, {"account": aid, "payouts_fail": aid in emu.payout_fail_accounts})
    if head == "accounts" and n == 4 and parts[2] == "capabilities" and method == "POST":
        with emu.lock:
            cap = emu.set_capability(
                parts[1], parts[3], str(data.get("status") or ""), data.get("disabled_reason") or None
            )
            return _resp(emu, 200, cap)
    if head == "onboarding" and n == 2 and method in ("GET", "POST"):
        with emu.lock:
            a = emu.onboard_account(parts[1])
        ret = data.get("return_url")
        if ret:
            return (
                302,
                [("Location", ret), ("Content-Type", "text/html")],
                ('<a href="%s">Continue</a>' % html.escape(ret)).encode(),
            )
        return (
            200,
            [("Content-Type", "text/html; charset=utf-8")],
            (
                "<html><body><h1>Stripe emulator</h1><p>Account %s onboarded.</p></body></html>" % html.escape(a["id"])
            ).encode(),
        )
    if head == "express_dashboard" and n == 2 and method == "GET":
        # where a login link leads: the connected account's Express dashboard, reduced to a page
        with emu.lock:
            a = emu.objects.get(parts[1])
            if a is None or a.get("object") != "account" or a.get("deleted"):
                return _err(emu, 404, "No such account: %s" % parts[1])
            link = emu.internal.get(str(data.get("link") or ""))
            if not link or link.get("login_link") != a["id"]:
                # Stripe's login links are single-use: a spent (or made-up) one lands on the sign-in page
                return (
                    410,
                    [("Content-Type", "text/html; charset=utf-8")],
                    b'<html><body><h1>Express dashboard (Stripe emulator)</h1><p id="expired">This link has '
                    b"expired: ask the platform for a new one.</p></body></html>",
                )
            link["login_link"] = None
            bal = emu.balance_obj(a["id"])
        amounts = ", ".join("%d %s" % (b["amount"], b["currency"]) for b in bal["available"]) or "0"
        return (
            200,
            [("Content-Type", "text/html; charset=utf-8")],
            (
                '<html><body><h1>Express dashboard (Stripe emulator)</h1><p id="account">%s</p>'
                '<p id="available">Available: %s</p></body></html>' % (html.escape(a["id"]), html.escape(amounts))
            ).encode(),
        )
    if head == "clock":
        if n == 1 and method == "GET":
            with emu.lock:
                emu._release_due_funds()
                return _resp(emu, 200, emu.clock_state())
        if n == 2 and parts[1] == "advance" and method == "POST":
            seconds = data.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float, str)):
                return _err(emu, 400, "seconds is required: a whole number of seconds >= 0", "seconds")
            try:
                seconds = int(seconds)
            except ValueError:
                return _err(emu, 400, "seconds must be a whole number of seconds >= 0", "seconds")
            if seconds < 0:
                return _err(emu, 400, "seconds must be >= 0: emulated time only moves forward", "seconds")
            with emu.lock:
                out = emu.clock_advance(seconds)
                out["balance"] = emu.balance_obj(None)
                return _resp(emu, 200, out)
    if head == "balance":
        account = data.get("account") or None
        if n == 1 and method == "GET":
            with emu.lock:
                emu._release_due_funds()
                return _resp(emu, 200, emu.balance_obj(account))
        if n == 2 and parts[1] == "settle" and method == "POST":
            with emu.lock:
                moved = emu.settle()
                return _resp(emu, 200, {"settled_transactions": moved, "balance": emu.balance_obj(None)})
        if n == 2 and parts[1] == "topup" and method == "POST":
            amount = int(data.get("amount", 0))
            if amount < 1:
                return _err(emu, 400, "amount must be a positive integer", "amount")
            currency = (data.get("currency") or "usd").lower()
            with emu.lock:
                if account:
                    emu._resolve_account(account, "account")
                emu._check_currency(currency)
                txn = emu.topup(amount, currency, account)
                return _resp(emu, 200, {"balance_transaction": txn, "balance": emu.balance_obj(account)})
    if head == "payouts":
        if n == 2 and parts[1] == "fail_next" and method == "POST":
            with emu.lock:
                emu.payout_fail_next.append(
                    {
                        "count": int(data.get("count", 1)),
                        "account": data.get("account"),
                        "failure_code": data.get("failure_code") or "account_closed",
                    }
                )
                return _resp(emu, 200, {"fail_next": emu.payout_fail_next})
        if n == 3 and parts[2] == "complete" and method == "POST":
            outcome = data.get("outcome", "paid")
            with emu.lock:
                po = emu.objects.get(parts[1])
                if po is None or po.get("object") != "payout":
                    return _err(emu, 404, "No such payout: '%s'" % parts[1], "id")
                if outcome != "failed":
                    emu.internal.setdefault(parts[1], {})["fail"] = None
                po = emu.finish_payout(
                    parts[1], force_fail=(data.get("failure_code") or "account_closed") if outcome == "failed" else None
                )
                return _resp(emu, 200, po)
    return _err(emu, 404, "Unknown emulator helper: %s /_emulator/%s" % (method, "/".join(parts)))
