"""Products and Prices (one-time and recurring)."""

from ..params import BOOL, INT, META, STR, STRLIST, ApiError, enum, invalid, obj, require, validate
from .router import route
from .state import jcopy, rand

INTERVALS = ("day", "week", "month", "year")


class ProductsMixin:
    PRODUCT_SPEC = {
        "name": STR,
        "description": STR,
        "active": BOOL,
        "metadata": META,
        "id": STR,
        "statement_descriptor": STR,
        "unit_label": STR,
        "url": STR,
        "tax_code": STR,
        "default_price_data": obj(currency=STR, unit_amount=INT, recurring=obj(interval=STR, interval_count=INT)),
        "shippable": BOOL,
        "images": STRLIST,
        "marketing_features": STRLIST,
        "type": enum("good", "service"),
    }

    def _product_obj(self, p):
        now = self._now()
        return {
            "id": p.get("id") or "prod_" + rand(14),
            "object": "product",
            "active": p.get("active", True),
            "created": now,
            "default_price": None,
            "description": p.get("description") or None,
            "images": p.get("images") or [],
            "livemode": False,
            "marketing_features": [],
            "metadata": {},
            "name": p["name"],
            "package_dimensions": None,
            "shippable": p.get("shippable"),
            "statement_descriptor": p.get("statement_descriptor") or None,
            "tax_code": p.get("tax_code") or None,
            "type": p.get("type") or "service",
            "unit_label": p.get("unit_label") or None,
            "updated": now,
            "url": p.get("url") or None,
        }

    @route("POST", "/v1/products")
    def product_create(self, ctx, q):
        p = validate(q, self.PRODUCT_SPEC)
        require(p, "name")
        if p.get("id") and p["id"] in self.objects:
            raise invalid("Product already exists.", param="id", code="resource_already_exists")
        prod = self._product_obj(p)
        self._apply_metadata(prod, p.get("metadata"))
        self._store("product", prod, ctx.account)
        self._emit("product.created", prod, ctx, ctx.account)
        if p.get("default_price_data"):
            dp = dict(p["default_price_data"], product=prod["id"])
            price = self._price_new(ctx, dp)
            prod["default_price"] = price["id"]
        return prod

    @route("GET", "/v1/products/{pid}")
    def product_retrieve(self, ctx, q, pid):
        validate(q, {"expand": STRLIST})
        return self._get("product", "product", pid, ctx)

    @route("POST", "/v1/products/{pid}")
    def product_update(self, ctx, q, pid):
        spec = dict(self.PRODUCT_SPEC, default_price=STR)
        spec.pop("id")
        spec.pop("default_price_data")
        p = validate(q, spec)
        prod = self._get("product", "product", pid, ctx)
        before = jcopy(prod)
        for f in ("name", "description", "statement_descriptor", "unit_label", "url"):
            if f in p:
                prod[f] = p[f] or (None if f != "name" else prod["name"])
        if "active" in p:
            prod["active"] = p["active"]
        if "default_price" in p:
            if p["default_price"]:
                price = self._get("price", "price", p["default_price"], ctx, "default_price", 400)
                if price["product"] != pid:
                    raise invalid("The price must belong to this product.", param="default_price")
            prod["default_price"] = p["default_price"] or None
        self._apply_metadata(prod, p.get("metadata"))
        prev = self._diff(before, prod)
        if prev:
            prod["updated"] = self._now()
            self._emit("product.updated", prod, ctx, ctx.account, prev)
        return prod

    @route("GET", "/v1/products")
    def product_list(self, ctx, q):
        active = q.pop("active", None)
        want = None if active in (None, "") else str(active).lower() in ("true", "1")
        return self._list(ctx, q, "product", "/v1/products", pred=lambda o: want is None or o["active"] == want)

    # ---------------------------------------------------------------- prices
    PRICE_SPEC = {
        "currency": STR,
        "unit_amount": INT,
        "unit_amount_decimal": STR,
        "product": STR,
        "product_data": obj(name=STR, metadata=META, statement_descriptor=STR, unit_label=STR, active=BOOL),
        "recurring": obj(interval=STR, interval_count=INT, usage_type=enum("licensed"), trial_period_days=INT),
        "nickname": STR,
        "metadata": META,
        "active": BOOL,
        "lookup_key": STR,
        "transfer_lookup_key": BOOL,
        "billing_scheme": enum("per_unit"),
        "tax_behavior": enum("exclusive", "inclusive", "unspecified"),
    }

    def _price_new(self, ctx, p):
        require(p, "currency")
        currency = self._check_currency(p["currency"])
        if p.get("unit_amount") is None:
            raise ApiError(400, "Missing required param: unit_amount.", code="parameter_missing", param="unit_amount")
        if p["unit_amount"] < 0:
            raise invalid("This value must be greater than or equal to 0.", param="unit_amount")
        if p.get("product"):
            self._get("product", "product", p["product"], ctx, "product", 400)
            product_id = p["product"]
        elif p.get("product_data"):
            require(p["product_data"], "name")
            prod = self._product_obj(p["product_data"])
            self._apply_metadata(prod, p["product_data"].get("metadata"))
            self._store("product", prod, ctx.account)
            self._emit("product.created", prod, ctx, ctx.account)
            product_id = prod["id"]
        else:
            raise ApiError(400, "Missing required param: product.", code="parameter_missing", param="product")
        rec = None
        if p.get("recurring"):
            interval = p["recurring"].get("interval")
            if interval not in INTERVALS:
                raise invalid(
                    "Invalid recurring[interval]: must be one of day, week, month, or year",
                    param="recurring[interval]",
                )
            count = p["recurring"].get("interval_count", 1)
            if count < 1 or (interval == "week" and count > 156) or (interval == "month" and count > 36):
                raise invalid("Invalid recurring[interval_count].", param="recurring[interval_count]")
            rec = {
                "interval": interval,
                "interval_count": count,
                "meter": None,
                "usage_type": "licensed",
                "trial_period_days": p["recurring"].get("trial_period_days"),
            }
        price = {
            "id": "price_" + rand(),
            "object": "price",
            "active": p.get("active", True),
            "billing_scheme": "per_unit",
            "created": self._now(),
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": p.get("lookup_key") or None,
            "metadata": {},
            "nickname": p.get("nickname") or None,
            "product": product_id,
            "recurring": rec,
            "tax_behavior": p.get("tax_behavior") or "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if rec else "one_time",
            "unit_amount": p["unit_amount"],
            "unit_amount_decimal": str(p["unit_amount"]),
        }
        self._apply_metadata(price, p.get("metadata"))
        self._store("price", price, ctx.account, index=("product",))
        self._emit("price.created", price, ctx, ctx.account)
        return price

    @route("POST", "/v1/prices")
    def price_create(self, ctx, q):
        return self._price_new(ctx, validate(q, self.PRICE_SPEC))

    @route("GET", "/v1/prices/{pid}")
    def price_retrieve(self, ctx, q, pid):
        validate(q, {"expand": STRLIST})
        return self._get("price", "price", pid, ctx)

    @route("POST", "/v1/prices/{pid}")
    def price_update(self, ctx, q, pid):
        p = validate(q, {"active": BOOL, "metadata": META, "nickname": STR, "lookup_key": STR})
        price = self._get("price", "price", pid, ctx)
        before = jcopy(price)
        if "active" in p:
            price["active"] = p["active"]
        if "nickname" in p:
            price["nickname"] = p["nickname"] or None
        if "lookup_key" in p:
            price["lookup_key"] = p["lookup_key"] or None
        self._apply_metadata(price, p.get("metadata"))
        prev = self._diff(before, price)
        if prev:
            self._emit("price.updated", price, ctx, ctx.account, prev)
        return price

    @route("GET", "/v1/prices")
    def price_list(self, ctx, q):
        product = self._pop_str(q, "product")
        active = q.pop("active", None)
        self._pop_str(q, "type")
        want = None if active in (None, "") else str(active).lower() in ("true", "1")

        def pred(o):
            return (not product or o["product"] == product) and (want is None or o["active"] == want)

        if product:
            return self._list(ctx, q, "price", "/v1/prices", index=("product", product), pred=pred)
        return self._list(ctx, q, "price", "/v1/prices", pred=pred)
