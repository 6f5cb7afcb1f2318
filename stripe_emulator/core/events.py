"""Events (emitted on every change and listed) and webhook endpoints."""

import urllib.parse

from ..params import (
    BOOL,
    META,
    STR,
    STRLIST,
    ApiError,
    invalid,
    require,
    validate,
)
from .router import route
from .state import jcopy, rand
from .tables import API_VERSION


class EventsMixin:
    def _emit(self, type_, o, ctx=None, account=None, previous=None):
        data = {"object": jcopy(self._out(o))}
        if previous is not None:
            data["previous_attributes"] = previous
        matched = []
        for we_id in self.endpoints:
            we = self.objects.get(we_id)
            if we is None or we.get("deleted") or we["status"] != "enabled":
                continue
            # Stripe routes a connected account's events only to Connect endpoints (connect=true),
            # and the platform's own events only to the others.
            if bool(account) != self._endpoint_is_connect(we_id):
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

    # =============================================================== events
    @route("GET", "/v1/events")
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

    @route("GET", "/v1/events/{eid}")
    def event_retrieve(self, ctx, q, eid):
        validate(q, {"expand": STRLIST})
        return self._get("event", "event", eid, ctx)

    # ===================================================== webhook endpoints
    def _endpoint_is_connect(self, we_id):
        return bool(self.internal.get(we_id, {}).get("connect"))

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
        self.internal[we["id"]] = {"connect": bool(connect)}
        self.endpoints.append(we["id"])
        return we

    @staticmethod
    def _check_url(url, param="url"):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise invalid("Invalid URL: %s" % url, param=param, code="url_invalid")

    @route("POST", "/v1/webhook_endpoints")
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
        if p.get("api_version") and p["api_version"] != API_VERSION:
            # Stripe renders each endpoint's events in its api_version; the emulator renders only its own.
            raise invalid(
                "The emulator renders events in API version %s only; it cannot render api_version %s."
                % (API_VERSION, p["api_version"]),
                param="api_version",
            )
        we = self._create_endpoint(
            p["url"],
            p["enabled_events"],
            None,
            p.get("description") or None,
            None,
            p.get("api_version") or None,
            connect=bool(p.get("connect")),
        )
        self._apply_metadata(we, p.get("metadata"))
        out = dict(we)
        out["secret"] = self.webhook_secrets[we["id"]]
        return out

    @route("GET", "/v1/webhook_endpoints/{wid}")
    def we_retrieve(self, ctx, q, wid):
        validate(q, {"expand": STRLIST})
        return self._get("webhook_endpoint", "webhook_endpoint", wid, None if not ctx.account else ctx)

    @route("POST", "/v1/webhook_endpoints/{wid}")
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

    @route("DELETE", "/v1/webhook_endpoints/{wid}")
    def we_delete(self, ctx, q, wid):
        validate(q, {})
        we = self._get("webhook_endpoint", "webhook_endpoint", wid, ctx)
        we["deleted"] = True
        if wid in self.endpoints:
            self.endpoints.remove(wid)
        return {"id": wid, "object": "webhook_endpoint", "deleted": True}

    @route("GET", "/v1/webhook_endpoints")
    def we_list(self, ctx, q):
        return self._list(ctx, q, "webhook_endpoint", "/v1/webhook_endpoints")
