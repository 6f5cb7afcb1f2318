"""Routing of /v1 requests: the route decorator, auth, Stripe-Account, idempotency, dispatch and JSON answers."""

import base64
import json
import time
import traceback
import urllib.parse

from ..params import ApiError, decode_form, invalid
from .search import SEARCHABLE
from .state import Ctx, rand
from .tables import API_VERSION

ROUTES_ATTR = "_emulator_routes"


def route_key(method, path):
    """The dispatch key of a path pattern: (method, resource, has id, action, has second id).

    "/v1/transfers/{tid}/reversals/{rid}" -> ("GET", "transfers", 1, "reversals", 1).
    """
    parts = path.split("/")
    if parts[:2] != ["", "v1"] or not 3 <= len(parts) <= 6:
        raise ValueError("route path must look like /v1/resource[/{id}[/action[/{id}]]]: %r" % path)
    parts = parts[2:] + [None] * (6 - len(parts))
    res, oid, action, oid2 = parts

    def is_param(seg):
        return seg is not None and seg.startswith("{") and seg.endswith("}")

    if (oid is not None and not is_param(oid)) or (oid2 is not None and not is_param(oid2)) or is_param(action):
        raise ValueError("ids and actions alternate in a route path: %r" % path)
    return (method, res, 1 if oid else 0, action, 1 if oid2 else 0)


def route(method, path, publishable=False):
    """Serve method+path with the decorated method, called as fn(ctx, q, *ids).

    publishable=True also accepts pk_test_ keys. A method may carry several routes.
    """
    key = route_key(method, path)

    def decorate(fn):
        fn.__dict__.setdefault(ROUTES_ATTR, []).append((key, publishable))
        return fn

    return decorate


class RouterMixin:
    def _build_routes(self):
        R = {}
        for klass in reversed(type(self).__mro__):
            for name, fn in vars(klass).items():
                for key, publishable in getattr(fn, ROUTES_ATTR, ()):
                    if key in R:
                        raise RuntimeError("two handlers for route %r" % (key,))
                    R[key] = (getattr(self, name), publishable)
        self.routes = R

    def handle(self, method, target, headers, body):
        path, _, qs = target.partition("?")
        if path.startswith("/v1/"):
            return self._handle_api(method, path, qs, headers, body)
        if path.startswith("/_emulator/"):
            from ..helpers import handle_helper

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
    def _request_log_url(req_id):
        """Where Stripe's dashboard shows the request; Stripe puts it on every API error."""
        return "https://dashboard.stripe.com/test/logs/%s" % req_id

    @classmethod
    def _json(cls, status, payload, extra_headers=(), req_id=None):
        if req_id and status >= 400 and isinstance(payload.get("error"), dict):
            payload["error"].setdefault("request_log_url", cls._request_log_url(req_id))
        body = json.dumps(payload).encode("utf-8")
        h = [("Content-Type", "application/json"), ("Stripe-Version", API_VERSION)]
        if req_id:
            h.append(("Request-Id", req_id))
        h.extend(extra_headers)
        return status, h, body

    def _handle_api(self, method, path, qs, headers, body):
        req_id = "req_" + rand(14)
        fault = self._take_fault(path)
        if fault is not None:
            return self._fault_response(fault, req_id)

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
        ctx.api_version = headers.get("stripe-version") or None

        if path.startswith("/v1/test_helpers/"):  # /v1/test_helpers/<resource>/... is one resource
            path = "/v1/test_helpers." + path[len("/v1/test_helpers/") :]
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
        if oid == "search" and action is None and method == "GET" and res in SEARCHABLE:
            # /v1/charges/search reads like a retrieve of id "search": searches are routed by hand
            route = (lambda ctx, q, _oid, res=res: self.search(ctx, q, res), False)
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
            self._release_due_funds()  # funds whose available_on has come, before the request sees them
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
                if result.get("object") == "search_result":
                    expand = [e for e in expand if e != "total_count"]
                if expand:
                    result = self._expand(result, expand)
                rbody = json.dumps(result).encode("utf-8")
                save = True
            except ApiError as e:
                status = e.status
                err_body = e.body()
                err_body["error"]["request_log_url"] = self._request_log_url(req_id)
                rbody = json.dumps(err_body).encode("utf-8")
                save = not (e.code or "").startswith("parameter_")
            except Exception as e:
                traceback.print_exc()
                status = 500
                rbody = json.dumps(
                    {
                        "error": {
                            "type": "api_error",
                            "message": "Emulator internal error: %r" % (e,),
                            "request_log_url": self._request_log_url(req_id),
                        }
                    }
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
