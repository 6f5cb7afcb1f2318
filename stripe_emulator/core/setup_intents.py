"""SetupIntents: save a card for later off-session payments (subscription renewals).

Confirming attaches the PaymentMethod to the SetupIntent's customer. Cards that decline on charges
(4000 0000 0000 0341, 0002, ...) still set up fine: like Stripe, the decline comes at the first charge.
"""

from ..params import ANY, BOOL, META, STR, STRLIST, ApiError, enum, invalid, obj, validate
from .payment_intents import RETURN_URL_REQUIRED
from .router import route
from .state import not_found, rand


class SetupIntentsMixin:
    SI_CREATE = {
        "customer": STR,
        "payment_method": STR,
        "payment_method_types": STRLIST,
        "allowed_payment_method_types": STRLIST,
        "excluded_payment_method_types": STRLIST,
        "payment_method_configuration": STR,
        "automatic_payment_methods": obj(enabled=BOOL, allow_redirects=enum("always", "never")),
        "usage": enum("off_session", "on_session"),
        "confirm": BOOL,
        "description": STR,
        "metadata": META,
        "return_url": STR,
        "payment_method_options": ANY,
        "payment_method_data": ANY,
        "mandate_data": ANY,
        "use_stripe_sdk": BOOL,
        "on_behalf_of": STR,
        "flow_directions": STRLIST,
    }
    SI_CONFIRM = {
        "payment_method": STR,
        "payment_method_data": ANY,
        "return_url": STR,
        "client_secret": STR,
        "key": STR,
        "use_stripe_sdk": BOOL,
        "mandate_data": ANY,
        "payment_method_options": ANY,
        "_stripe_version": STR,
    }

    @route("POST", "/v1/setup_intents")
    def si_create(self, ctx, q):
        p = validate(q, self.SI_CREATE)
        # the same payment-method rules as PaymentIntents (API 2023-08-16 and 2026-09-30)
        self._check_payment_method_types_param(ctx, p)
        methods = self._payment_method_settings(ctx, p)
        cust = None
        if p.get("customer"):
            cust = self._get("customer", "customer", p["customer"], ctx, "customer", 400)
        pm = None
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
        sid = "seti_" + rand()
        si = {
            "id": sid,
            "object": "setup_intent",
            "allowed_payment_method_types": methods["allowed_payment_method_types"],
            "application": None,
            "automatic_payment_methods": methods["automatic_payment_methods"],
            "cancellation_reason": None,
            "client_secret": "%s_secret_%s" % (sid, rand(25)),
            "created": self._now(),
            "customer": cust["id"] if cust else None,
            "description": p.get("description") or None,
            "excluded_payment_method_types": None,
            "flow_directions": p.get("flow_directions") or None,
            "last_setup_error": None,
            "latest_attempt": None,
            "livemode": False,
            "mandate": None,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": p.get("on_behalf_of") or None,
            "payment_method": pm["id"] if pm else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
            },
            "payment_method_types": methods["payment_method_types"],
            "single_use_mandate": None,
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "usage": p.get("usage") or "off_session",
        }
        self._apply_metadata(si, p.get("metadata"))
        self._store("setup_intent", si, ctx.account, index=("customer",))
        self.internal[sid] = {"return_url": p.get("return_url")}
        self._emit("setup_intent.created", si, ctx, ctx.account)
        if p.get("confirm"):
            self._si_confirm(ctx, si, None, p)
        return si

    def _si_for(self, ctx, sid, q):
        si = self.objects.get(sid)
        if ctx.publishable:
            if not q.get("client_secret"):
                raise ApiError(
                    400, "Missing required param: client_secret.", code="parameter_missing", param="client_secret"
                )
            if si is None or si.get("object") != "setup_intent" or si["client_secret"] != q["client_secret"]:
                raise not_found("setup_intent", sid)
            return si
        return self._get("setup_intent", "setup_intent", sid, ctx)

    @route("GET", "/v1/setup_intents/{sid}", publishable=True)
    def si_retrieve(self, ctx, q, sid):
        validate(q, {"client_secret": STR, "expand": STRLIST})
        return self._si_for(ctx, sid, q)

    @route("GET", "/v1/setup_intents")
    def si_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        self._pop_str(q, "payment_method")
        if cust:
            return self._list(ctx, q, "setup_intent", "/v1/setup_intents", index=("customer", cust))
        return self._list(ctx, q, "setup_intent", "/v1/setup_intents")

    @route("POST", "/v1/setup_intents/{sid}/confirm", publishable=True)
    def si_confirm(self, ctx, q, sid):
        p = validate(q, self.SI_CONFIRM)
        si = self._si_for(ctx, sid, p)
        self._si_confirm(ctx, si, p.get("payment_method"), p)
        return si

    def _si_confirm(self, ctx, si, pm_param, p):
        if si["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise ApiError(
                400,
                "You cannot confirm this SetupIntent because it has a status of %s." % si["status"],
                code="setup_intent_unexpected_state",
            )
        pm = self._pm_to_confirm(ctx, si, pm_param, p)
        if pm is None:
            raise ApiError(
                400,
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                code="setup_intent_unexpected_state",
                param="payment_method",
            )
        apm = si.get("automatic_payment_methods") or {}
        if (
            not ctx.publishable
            and apm.get("enabled")
            and apm.get("allow_redirects") != "never"
            and not (p.get("return_url") or self.internal[si["id"]].get("return_url"))
        ):
            raise invalid(RETURN_URL_REQUIRED, param="return_url")
        acct = self.owner.get(si["id"])
        si["payment_method"] = pm["id"]
        if si.get("customer"):
            cust = self.objects[si["customer"]]
            if pm.get("customer") and pm["customer"] != cust["id"]:
                raise invalid(
                    "The payment method you provided has already been attached to a customer.",
                    param="payment_method",
                    code="payment_method_unexpected_state",
                )
            if not pm.get("customer"):
                self._attach_pm(ctx, pm, cust)
        # A card set up for off-session use is authenticated once here (3-D Secure cards included);
        # whether later charges still ask for it depends on the card (see subscriptions._charge_invoice).
        self.internal.setdefault(pm["id"], {})["setup_for_off_session"] = True
        si["status"] = "succeeded"
        si["next_action"] = None
        si["last_setup_error"] = None
        si["latest_attempt"] = "setatt_" + rand()
        self._emit("setup_intent.succeeded", si, ctx, acct)

    @route("POST", "/v1/setup_intents/{sid}/cancel")
    def si_cancel(self, ctx, q, sid):
        p = validate(q, {"cancellation_reason": enum("abandoned", "requested_by_customer", "duplicate")})
        si = self._get("setup_intent", "setup_intent", sid, ctx)
        if si["status"] in ("succeeded", "canceled"):
            raise ApiError(
                400,
                "You cannot cancel this SetupIntent because it has a status of %s." % si["status"],
                code="setup_intent_unexpected_state",
            )
        si["status"] = "canceled"
        si["cancellation_reason"] = p.get("cancellation_reason")
        self._emit("setup_intent.canceled", si, ctx, self.owner.get(sid))
        return si
