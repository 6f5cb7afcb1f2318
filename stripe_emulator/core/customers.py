"""Customers."""

from ..params import (
    ANY,
    BOOL,
    INT,
    META,
    STR,
    STRLIST,
    enum,
    invalid,
    validate,
)
from .router import route
from .state import address_from, jcopy, rand


class CustomersMixin:
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

    @route("POST", "/v1/customers")
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
            "test_clock": p.get("test_clock") or None,
        }
        if c["test_clock"]:
            self._get("test_helpers.test_clock", "test_clock", c["test_clock"], ctx, "test_clock", 400)
        self._apply_metadata(c, p.get("metadata"))
        self._store("customer", c, ctx.account, index=("email",))
        self._emit("customer.created", c, ctx, ctx.account)
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
            self._attach_pm(ctx, pm, c)
        return c

    @route("GET", "/v1/customers/{cid}")
    def customer_retrieve(self, ctx, q, cid):
        validate(q, {"expand": STRLIST})
        c = self.objects.get(cid)
        if c is not None and c.get("object") == "customer" and c.get("deleted") and self.owner.get(cid) == ctx.account:
            return {"id": cid, "object": "customer", "deleted": True}
        return self._get("customer", "customer", cid, ctx)

    @route("POST", "/v1/customers/{cid}")
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

    @route("DELETE", "/v1/customers/{cid}")
    def customer_delete(self, ctx, q, cid):
        validate(q, {})
        c = self._get("customer", "customer", cid, ctx)
        c["deleted"] = True
        snapshot = dict(c)
        snapshot.pop("deleted")
        self._emit("customer.deleted", snapshot, ctx, ctx.account)
        return {"id": cid, "object": "customer", "deleted": True}

    @route("GET", "/v1/customers")
    def customer_list(self, ctx, q):
        email = self._pop_str(q, "email")
        if email:
            return self._list(
                ctx, q, "customer", "/v1/customers", index=("email", email), pred=lambda o: o.get("email") == email
            )
        self._pop_str(q, "test_clock")
        return self._list(ctx, q, "customer", "/v1/customers")

    @route("GET", "/v1/customers/{cid}/payment_methods")
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
