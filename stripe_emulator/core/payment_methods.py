"""PaymentMethods: test cards and tokens, attach and detach."""

import time

from ..params import (
    ANY,
    INT,
    META,
    STR,
    STRLIST,
    ApiError,
    enum,
    invalid,
    obj,
    require,
    validate,
)
from .router import route
from .state import address_from, jcopy, luhn_ok, not_found, rand
from .tables import CARD_TOKENS, CARDS, PM_TOKENS


class PaymentMethodsMixin:
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

    def _pm_to_confirm(self, ctx, intent, pm_param, p):
        """The payment method a confirm uses: the `payment_method` given, a new one from
        `payment_method_data`, or the one already on the intent (None when there is none)."""
        if pm_param:
            return self._resolve_pm(ctx, pm_param, "payment_method")
        if isinstance(p.get("payment_method_data"), dict):
            return self._pm_from_data(ctx, p["payment_method_data"])
        if intent.get("payment_method"):
            return self.objects[intent["payment_method"]]
        return None

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

    @route("POST", "/v1/payment_methods")
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

    @route("GET", "/v1/payment_methods/{pm_id}")
    def pm_retrieve(self, ctx, q, pm_id):
        validate(q, {"expand": STRLIST})
        if pm_id in PM_TOKENS:
            return self._resolve_pm(ctx, pm_id, "id")
        return self._get("payment_method", "PaymentMethod", pm_id, ctx)

    @route("POST", "/v1/payment_methods/{pm_id}")
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

    @route("POST", "/v1/payment_methods/{pm_id}/attach")
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

    @route("POST", "/v1/payment_methods/{pm_id}/detach")
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

    @route("GET", "/v1/payment_methods")
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
