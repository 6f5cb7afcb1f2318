"""Subscriptions, their Invoices and invoice payments, as the API version in tables.API_VERSION shows them.

Shapes follow that version: a subscription's billing period is on its items (`items.data[].current_period_*`),
an invoice names its subscription in `parent.subscription_details.subscription`, and the first invoice's
payment is confirmed with `confirmation_secret.client_secret`, an includable field (`expand[]=
latest_invoice.confirmation_secret`). An invoice's payments are `invoice_payment` objects (`payments`, also
includable, and `/v1/invoice_payments?invoice=`); PaymentIntents carry no invoice field.

Lifecycle
- create: the first invoice is finalized at once with a PaymentIntent. `payment_behavior=default_incomplete`
  leaves it for the customer to confirm (status `incomplete`); otherwise the default payment method is charged.
  Confirming that PaymentIntent pays the invoice and activates the subscription (incomplete expires after 23 h
  of the customer's clock time).
- renewals happen when the customer's test clock passes a period end (`test_clocks.py`): a
  `subscription_cycle` invoice, a draft for an hour (`automatically_finalizes_at`), then finalized and charged
  off-session to the subscription's (else the customer's
  invoice_settings) default payment method. `invoice.upcoming` is sent 3 days before a renewal.
- a failed charge: `invoice.payment_failed`, the subscription `past_due`, retried RETRY_DAYS after each attempt (config
  `subscription_retry_days`); after the last retry the subscription is canceled (or `unpaid` with config
  `subscription_failed_action=unpaid`). A card that needs authentication on renewal leaves the PaymentIntent
  in `requires_action` (`invoice.payment_action_required`) until the customer confirms it.
- update: price change with `proration_behavior` create_prorations (credited/charged on the next invoice),
  always_invoice (invoiced now) or none; a price of another interval restarts the cycle now and invoices
  at once (`subscription_schedules.py`); `cancel_at_period_end`; `pause_collection` (renewal invoices are
  voided, kept as drafts or marked uncollectible). Cancel now: DELETE.
- pause and resume (`subscription_pause.py`): status `paused`, no invoices until resumed.
- subscription schedules (`subscription_schedules.py`): changes from a later phase, applied at its start.
Not emulated: trials (so no pause at a trial's end), taxes, discounts,
coupons, multiple currencies per customer, metered prices.
"""

import calendar
import time

from ..params import ANY, BOOL, INT, META, STR, STRLIST, ApiError, enum, invalid, listof, obj, require, validate
from .router import route
from .state import jcopy, not_found, rand

DAY = 86400
INCOMPLETE_EXPIRY = 23 * 3600
UPCOMING_DAYS = 3
RETRY_DAYS = (1, 2, 3)  # days after the previous attempt: all within a weekly period
INCLUDABLE = ("confirmation_secret", "payments")
LIVE_STATUSES = ("active", "past_due", "trialing")


def add_interval(anchor, n, interval, count=1):
    """`anchor` + n intervals, computed from the anchor (months keep its day, clamped to the month's end)."""
    if interval == "day":
        return anchor + n * count * DAY
    if interval == "week":
        return anchor + n * count * 7 * DAY
    months = n * count * (12 if interval == "year" else 1)
    t = time.gmtime(anchor)
    total = t.tm_mon - 1 + months
    year, month = t.tm_year + total // 12, total % 12 + 1
    day = min(t.tm_mday, calendar.monthrange(year, month)[1])
    return calendar.timegm((year, month, day, t.tm_hour, t.tm_min, t.tm_sec, 0, 0, 0))


class SubscriptionsMixin:
    # ------------------------------------------------------------ clock time
    def _clock_of(self, customer_id):
        c = self.objects.get(customer_id) or {}
        return c.get("test_clock")

    def _cust_now(self, customer_id):
        clock = self._clock_of(customer_id)
        if clock and clock in self.objects:
            return self.objects[clock]["frozen_time"]
        return self._now()

    # ------------------------------------------------------------ hooks into other resources
    def _emit(self, type_, o, ctx=None, account=None, previous=None):
        evt = super()._emit(type_, o, ctx, account, previous)
        if type_.startswith("payment_intent.") and o.get("object") == "payment_intent":
            inv_id = self.internal.get(o["id"], {}).get("invoice")
            if inv_id and inv_id in self.objects:
                self._invoice_on_intent(ctx, self.objects[inv_id], o, type_)
        return evt

    def _expand_path(self, o, segs, full, depth):
        if isinstance(o, dict) and o.get("object") == "invoice" and segs and segs[0] in INCLUDABLE and o.get("id"):
            o = dict(o)
            o[segs[0]] = self._invoice_includable(o["id"], segs[0])
        return super()._expand_path(o, segs, full, depth)

    def _invoice_includable(self, inv_id, name):
        data = self.internal.get(inv_id, {})
        if name == "confirmation_secret":
            pi = self.objects.get(data.get("payment_intent") or "")
            if pi is None:
                return None
            return {"client_secret": pi["client_secret"], "type": "payment_intent"}
        pays = [self.objects[p] for p in data.get("payments", ())]
        return {
            "object": "list",
            "data": [jcopy(p) for p in reversed(pays)],
            "has_more": False,
            "url": "/v1/invoice_payments?invoice=%s" % inv_id,
        }

    # ------------------------------------------------------------ subscriptions
    SUB_CREATE = {
        "customer": STR,
        "items": listof(obj(price=STR, quantity=INT, metadata=META)),
        "payment_behavior": enum("allow_incomplete", "default_incomplete", "error_if_incomplete"),
        "payment_settings": obj(
            save_default_payment_method=enum("on_subscription", "off"),
            payment_method_types=STRLIST,
            payment_method_options=ANY,
        ),
        "default_payment_method": STR,
        "metadata": META,
        "cancel_at_period_end": BOOL,
        "collection_method": enum("charge_automatically"),
        "description": STR,
        "off_session": BOOL,
        "proration_behavior": enum("create_prorations", "none", "always_invoice"),
        "automatic_tax": ANY,
        "billing_mode": ANY,
        "application_fee_percent": STR,
        "transfer_data": ANY,
    }

    def _sub_item(self, sub_id, price, quantity, created, metadata=None):
        return {
            "id": "si_" + rand(14),
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": created,
            "current_period_end": None,
            "current_period_start": None,
            "discounts": [],
            "metadata": dict(metadata or {}),
            "plan": self._plan_of(price),
            "price": jcopy(price),
            "quantity": quantity,
            "subscription": sub_id,
            "tax_rates": [],
        }

    @staticmethod
    def _plan_of(price):
        rec = price["recurring"]
        return {
            "id": price["id"],
            "object": "plan",
            "active": price["active"],
            "amount": price["unit_amount"],
            "amount_decimal": str(price["unit_amount"]),
            "billing_scheme": "per_unit",
            "created": price["created"],
            "currency": price["currency"],
            "interval": rec["interval"],
            "interval_count": rec["interval_count"],
            "livemode": False,
            "metadata": dict(price["metadata"]),
            "meter": None,
            "nickname": price["nickname"],
            "product": price["product"],
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }

    def _recurring_price(self, ctx, price_id, param):
        price = self._get("price", "price", price_id, ctx, param, 400)
        if not price.get("recurring"):
            raise invalid(
                "The price specified is set to `type=one_time` but this field only accepts prices with "
                "`type=recurring`.",
                param=param,
            )
        if not price["active"]:
            raise invalid("The price specified is inactive. This field only accepts active prices.", param=param)
        return price

    def _set_period(self, sub):
        data = self.internal[sub["id"]]
        item = sub["items"]["data"][0]
        rec = item["price"]["recurring"]
        start = add_interval(sub["billing_cycle_anchor"], data["k"], rec["interval"], rec["interval_count"])
        end = add_interval(sub["billing_cycle_anchor"], data["k"] + 1, rec["interval"], rec["interval_count"])
        for it in sub["items"]["data"]:
            it["current_period_start"], it["current_period_end"] = start, end
        return start, end

    @staticmethod
    def _period(sub):
        item = sub["items"]["data"][0]
        return item["current_period_start"], item["current_period_end"]

    @route("POST", "/v1/subscriptions")
    def sub_create(self, ctx, q):
        p = validate(q, self.SUB_CREATE)
        require(p, "customer")
        cust = self._get("customer", "customer", p["customer"], ctx, "customer", 400)
        items = p.get("items") or []
        if not items:
            raise ApiError(400, "Missing required param: items.", code="parameter_missing", param="items")
        prices = []
        for i, it in enumerate(items):
            if not it.get("price"):
                raise ApiError(
                    400, "Missing required param: items[%d][price]." % i, code="parameter_missing", param="items"
                )
            prices.append(self._recurring_price(ctx, it["price"], "items[%d][price]" % i))
        first = prices[0]["recurring"]
        for pr in prices[1:]:
            if pr["recurring"]["interval"] != first["interval"] or pr["currency"] != prices[0]["currency"]:
                raise invalid("All prices on a subscription must have the same interval and currency.", param="items")
        dpm = None
        if p.get("default_payment_method"):
            pm = self._get(
                "payment_method", "PaymentMethod", p["default_payment_method"], ctx, "default_payment_method", 400
            )
            if pm.get("customer") != cust["id"]:
                raise invalid(
                    "The customer does not have a payment method with the ID %s." % pm["id"],
                    param="default_payment_method",
                    code="resource_missing",
                )
            dpm = pm["id"]
        now = self._cust_now(cust["id"])
        sid = "sub_" + rand()
        ps = p.get("payment_settings") or {}
        sub = {
            "id": sid,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": now,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"}},
            "billing_schedules": [],
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": bool(p.get("cancel_at_period_end")),
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": prices[0]["currency"],
            "customer": cust["id"],
            "customer_account": None,
            "days_until_due": None,
            "default_payment_method": dpm,
            "default_source": None,
            "default_tax_rates": [],
            "description": p.get("description") or None,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": [
                    self._sub_item(sid, pr, it.get("quantity", 1), now, it.get("metadata"))
                    for pr, it in zip(prices, items, strict=True)
                ],
                "has_more": False,
                "total_count": len(items),
                "url": "/v1/subscription_items?subscription=%s" % sid,
            },
            "latest_invoice": None,
            "livemode": False,
            "managed_payments": None,
            "metadata": {},
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": ps.get("payment_method_types") or None,
                "save_default_payment_method": ps.get("save_default_payment_method") or "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": now,
            "status": "incomplete",
            "status_details": None,
            "test_clock": cust.get("test_clock"),
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }
        self._apply_metadata(sub, p.get("metadata"))
        self._store("subscription", sub, ctx.account, index=("customer",))
        self.internal[sid] = {"k": 0, "pending": [], "upcoming_for": None}
        self._set_period(sub)
        self._emit("customer.subscription.created", sub, ctx, ctx.account)
        start, end = self._period(sub)
        inv = self._invoice_new(ctx, sub, "subscription_create", self._cycle_lines(sub, start, end), start, end)
        self._invoice_finalize(ctx, inv)
        behaviour = p.get("payment_behavior") or "allow_incomplete"
        if inv["status"] == "paid":
            self._sub_set_status(ctx, sub, "active")
        elif behaviour != "default_incomplete":
            pm_id = self._default_pm(sub)
            if pm_id:
                self._invoice_charge(ctx, inv, pm_id, off_session=bool(p.get("off_session")))
            if behaviour == "error_if_incomplete" and inv["status"] != "paid":
                pi = self.objects.get(self.internal[inv["id"]].get("payment_intent") or "")
                err = (pi or {}).get("last_payment_error") or {}
                raise ApiError(
                    402,
                    err.get("message") or "Payment for this subscription requires a payment method.",
                    type="card_error",
                    code=err.get("code") or "card_declined",
                    decline_code=err.get("decline_code"),
                )
        return sub

    @route("GET", "/v1/subscriptions/{sid}")
    def sub_retrieve(self, ctx, q, sid):
        validate(q, {"expand": STRLIST})
        return self._get("subscription", "subscription", sid, ctx)

    @route("GET", "/v1/subscriptions")
    def sub_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        status = self._pop_str(q, "status")
        price = self._pop_str(q, "price")
        self._pop_str(q, "test_clock")

        def pred(o):
            if status and status != "all" and o["status"] != status:
                return False
            if not status and o["status"] in ("canceled", "incomplete_expired"):
                return False  # as on Stripe: canceled ones only with status=canceled or all
            return not price or any(it["price"]["id"] == price for it in o["items"]["data"])

        if cust:
            return self._list(ctx, q, "subscription", "/v1/subscriptions", index=("customer", cust), pred=pred)
        return self._list(ctx, q, "subscription", "/v1/subscriptions", pred=pred)

    SUB_UPDATE = {
        "items": listof(obj(id=STR, price=STR, quantity=INT, deleted=BOOL, metadata=META)),
        "proration_behavior": enum("create_prorations", "none", "always_invoice"),
        "proration_date": INT,
        "cancel_at_period_end": BOOL,
        "pause_collection": obj(behavior=enum("keep_as_draft", "mark_uncollectible", "void"), resumes_at=INT),
        "default_payment_method": STR,
        "metadata": META,
        "description": STR,
        "payment_behavior": enum(
            "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
        ),
        "payment_settings": ANY,
        "off_session": BOOL,
        "cancellation_details": ANY,
    }

    @route("POST", "/v1/subscriptions/{sid}")
    def sub_update(self, ctx, q, sid):
        p = validate(q, self.SUB_UPDATE)
        sub = self._get("subscription", "subscription", sid, ctx)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                code="subscription_canceled",
            )
        before = jcopy(sub)
        now = self._cust_now(sub["customer"])
        if "cancel_at_period_end" in p and sub.get("schedule"):
            raise invalid(
                "The subscription is managed by the subscription schedule `%s`, and updating any cancelation "
                "behavior directly is not allowed. Please update the schedule instead." % sub["schedule"],
                param="cancel_at_period_end",
            )
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = p["cancel_at_period_end"]
            sub["cancel_at"] = self._period(sub)[1] if p["cancel_at_period_end"] else None
            sub["canceled_at"] = now if p["cancel_at_period_end"] else None
            if p["cancel_at_period_end"]:
                sub["cancellation_details"] = dict(sub["cancellation_details"], reason="cancellation_requested")
        if "pause_collection" in p:
            pc = p["pause_collection"]
            if pc:
                if not pc.get("behavior"):
                    raise ApiError(
                        400,
                        "Missing required param: pause_collection[behavior].",
                        code="parameter_missing",
                        param="pause_collection[behavior]",
                    )
                sub["pause_collection"] = {"behavior": pc["behavior"], "resumes_at": pc.get("resumes_at")}
            else:
                sub["pause_collection"] = None
        if p.get("default_payment_method"):
            pm = self._get(
                "payment_method", "PaymentMethod", p["default_payment_method"], ctx, "default_payment_method", 400
            )
            if pm.get("customer") != sub["customer"]:
                raise invalid(
                    "The customer does not have a payment method with the ID %s." % pm["id"],
                    param="default_payment_method",
                    code="resource_missing",
                )
            sub["default_payment_method"] = pm["id"]
        if "description" in p:
            sub["description"] = p["description"] or None
        self._apply_metadata(sub, p.get("metadata"))
        proration_lines = []
        behaviour = p.get("proration_behavior") or "create_prorations"
        reset_credit = None
        for i, change in enumerate(p.get("items") or []):
            item = next((it for it in sub["items"]["data"] if it["id"] == change.get("id")), None)
            if item is None:
                raise not_found("subscription_item", change.get("id"), "items[%d][id]" % i, 400)
            if change.get("deleted"):
                raise invalid("The emulator keeps one item per subscription change.", param="items[%d][deleted]" % i)
            new_price = item["price"]
            if change.get("price") and change["price"] != item["price"]["id"]:
                new_price = self._recurring_price(ctx, change["price"], "items[%d][price]" % i)
                old_rec, new_rec = item["price"]["recurring"], new_price["recurring"]
                if (old_rec["interval"], old_rec["interval_count"]) != (new_rec["interval"], new_rec["interval_count"]):
                    # another interval: the cycle restarts now, invoiced at once (subscription_schedules.py)
                    reset_credit = self._sub_reset_cycle(sub, item, now, behaviour)
            quantity = change.get("quantity", item["quantity"])
            old_amount = item["price"]["unit_amount"] * item["quantity"]
            new_amount = new_price["unit_amount"] * quantity
            if reset_credit is None and (new_amount != old_amount or new_price["id"] != item["price"]["id"]):
                start, end = self._period(sub)
                at = min(max(p.get("proration_date", now), start), end)
                fraction = (end - at) / float(end - start)
                period = {"start": at, "end": end}
                proration_lines.append(
                    self._line(
                        -round(old_amount * fraction),
                        "Unused time on %s" % self._price_label(item["price"]),
                        item["price"],
                        item["quantity"],
                        period,
                        True,
                        sub["id"],
                        item["id"],
                    )
                )
                proration_lines.append(
                    self._line(
                        round(new_amount * fraction),
                        "Remaining time on %s" % self._price_label(new_price),
                        new_price,
                        quantity,
                        period,
                        True,
                        sub["id"],
                        item["id"],
                    )
                )
            item["price"] = jcopy(new_price)
            item["plan"] = self._plan_of(new_price)
            item["quantity"] = quantity
            if change.get("metadata") is not None:
                self._apply_metadata(item, change["metadata"])
        if reset_credit is not None:
            self._sub_new_anchor(sub, now)
        prev = self._diff(before, sub)
        if prev:
            self._emit("customer.subscription.updated", sub, ctx, ctx.account, prev)
        if reset_credit is not None:
            self._sub_invoice_new_cycle(ctx, sub, reset_credit, now)
        elif proration_lines and behaviour == "create_prorations":
            self.internal[sid]["pending"].extend(proration_lines)
        elif proration_lines and behaviour == "always_invoice":
            start, end = self._period(sub)
            inv = self._invoice_new(ctx, sub, "subscription_update", proration_lines, now, end)
            self._invoice_finalize(ctx, inv)
            pm_id = self._default_pm(sub)
            if inv["status"] == "open" and pm_id:
                self._invoice_charge(ctx, inv, pm_id, off_session=True)
        return sub

    @route("DELETE", "/v1/subscriptions/{sid}")
    def sub_cancel(self, ctx, q, sid):
        p = validate(q, {"invoice_now": BOOL, "prorate": BOOL, "cancellation_details": ANY})
        sub = self._get("subscription", "subscription", sid, ctx)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(
                "No such subscription: '%s'; it has already been canceled." % sid, code="resource_missing", status=404
            )
        details = p.get("cancellation_details") if isinstance(p.get("cancellation_details"), dict) else {}
        self._sub_end(ctx, sub, "cancellation_requested", comment=details.get("comment"))
        return sub

    def _sub_set_status(self, ctx, sub, status, **extra):
        before = jcopy(sub)
        sub["status"] = status
        sub.update(extra)
        prev = self._diff(before, sub)
        if prev:
            self._emit("customer.subscription.updated", sub, ctx, self.owner.get(sub["id"]), prev)

    def _sub_end(self, ctx, sub, reason, status="canceled", comment=None):
        """Cancel now (or leave `unpaid`): no more renewals or retries."""
        now = self._cust_now(sub["customer"])
        acct = self.owner.get(sub["id"])
        if status == "unpaid":
            self._sub_set_status(ctx, sub, "unpaid")
            return
        was_incomplete = sub["status"] == "incomplete"
        sub["status"] = "incomplete_expired" if reason == "incomplete_expired" else "canceled"
        sub["canceled_at"] = sub["canceled_at"] or now
        sub["ended_at"] = now
        sub["cancel_at"] = None if reason != "cancellation_requested" else sub["cancel_at"]
        sub["cancellation_details"] = {"comment": comment, "feedback": None, "reason": reason}
        for inv_id in self.idx.get(("invoice", "subscription_id", sub["id"]), ()):
            inv = self.objects[inv_id]
            if inv["status"] == "open":
                inv["next_payment_attempt"] = None
                if was_incomplete:
                    self._invoice_void(ctx, inv)
        self._emit("customer.subscription.deleted", sub, ctx, acct)

    def _default_pm(self, sub):
        if sub.get("default_payment_method"):
            return sub["default_payment_method"]
        cust = self.objects.get(sub["customer"]) or {}
        return (cust.get("invoice_settings") or {}).get("default_payment_method")

    @staticmethod
    def _price_label(price):
        rec = price.get("recurring") or {}
        amount = price["unit_amount"]
        return "%s (at $%d.%02d / %s)" % (
            price["nickname"] or price["product"],
            amount // 100,
            amount % 100,
            rec.get("interval", "once"),
        )

    # ------------------------------------------------------------ invoices
    def _line(self, amount, description, price, quantity, period, proration, sub_id, item_id):
        return {
            "id": "il_" + rand(),
            "object": "line_item",
            "amount": amount,
            "currency": price["currency"],
            "description": description,
            "discount_amounts": [],
            "discountable": not proration,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "parent": {
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": ("ii_" + rand()) if proration else None,
                    "proration": proration,
                    "proration_details": {"credited_items": None},
                    "subscription": sub_id,
                    "subscription_item": item_id,
                },
                "type": "subscription_item_details",
            },
            "period": dict(period),
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price["id"], "product": price["product"]},
                "type": "price_details",
                "unit_amount_decimal": str(price["unit_amount"]),
            },
            "quantity": quantity,
            "quantity_decimal": str(quantity),
            "subscription": None,
            "subtotal": amount,
            "taxes": [],
        }

    def _cycle_lines(self, sub, start, end):
        return [
            self._line(
                it["price"]["unit_amount"] * it["quantity"],
                "%d × %s" % (it["quantity"], self._price_label(it["price"])),
                it["price"],
                it["quantity"],
                {"start": start, "end": end},
                False,
                sub["id"],
                it["id"],
            )
            for it in sub["items"]["data"]
        ]

    def _invoice_new(self, ctx, sub, reason, lines, period_start, period_end):
        cust = self.objects[sub["customer"]]
        now = self._cust_now(cust["id"])
        iid = "in_" + rand()
        if reason == "subscription_cycle":
            lines = self.internal[sub["id"]]["pending"] + lines
            self.internal[sub["id"]]["pending"] = []
        for ln in lines:
            ln["invoice"] = iid
        total = sum(ln["amount"] for ln in lines)
        inv = {
            "id": iid,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Talkpay (emulated)",
            "account_tax_ids": None,
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": total,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "automatic_tax": {
                "disabled_reason": None,
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "automatically_finalizes_at": None,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": sub["currency"],
            "custom_fields": None,
            "customer": cust["id"],
            "customer_account": None,
            "customer_address": cust.get("address"),
            "customer_email": cust.get("email"),
            "customer_name": cust.get("name"),
            "customer_phone": cust.get("phone"),
            "customer_shipping": cust.get("shipping"),
            "customer_tax_exempt": cust.get("tax_exempt") or "none",
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "due_date": None,
            "effective_at": None,
            "ending_balance": None,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": "/v1/invoices/%s/lines" % iid,
            },
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None,
            "number": None,
            "on_behalf_of": None,
            "parent": {
                "quote_details": None,
                "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
                "type": "subscription_details",
            },
            "payment_settings": {
                "default_mandate": None,
                "payment_method_options": None,
                "payment_method_types": sub["payment_settings"]["payment_method_types"],
            },
            "period_end": period_end,
            "period_start": period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": cust.get("balance", 0),
            "statement_descriptor": None,
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subscription": None,
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "test_clock": cust.get("test_clock"),
            "total": total,
            "total_discount_amounts": [],
            "total_excluding_tax": total,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": now,
        }
        acct = self.owner.get(sub["id"])
        self._store("invoice", inv, acct, index=("customer",))
        self._index("invoice", "subscription_id", sub["id"], iid)
        self.internal[iid] = {"subscription": sub["id"], "payments": [], "payment_intent": None}
        sub["latest_invoice"] = iid
        self._emit("invoice.created", inv, ctx, acct)
        return inv

    def _invoice_finalize(self, ctx, inv):
        cust = self.objects[inv["customer"]]
        acct = self.owner.get(inv["id"])
        now = self._cust_now(cust["id"])
        # The customer's credit balance (negative) pays first; a negative total is credited to it.
        balance = cust.get("balance", 0)
        due = inv["total"] + balance
        cust["balance"] = min(due, 0)
        inv["starting_balance"] = balance
        inv["ending_balance"] = cust["balance"]
        inv["amount_due"] = inv["amount_remaining"] = max(due, 0)
        seq = cust.get("next_invoice_sequence", 1)
        cust["next_invoice_sequence"] = seq + 1
        inv["number"] = "%s-%04d" % (cust["invoice_prefix"], seq)
        inv["status"] = "open"
        inv["automatically_finalizes_at"] = None
        inv["effective_at"] = now
        inv["status_transitions"]["finalized_at"] = now
        if inv["amount_due"] > 0:
            sub = self.objects[self.internal[inv["id"]]["subscription"]]
            save = sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
            q = {
                "amount": str(inv["amount_due"]),
                "currency": inv["currency"],
                "customer": cust["id"],
                "description": {
                    "subscription_create": "Subscription creation",
                    "subscription_update": "Subscription update",
                }.get(inv["billing_reason"], "Subscription cycle"),
                "allowed_payment_method_types": ["card"],
            }
            if save:
                q["setup_future_usage"] = "off_session"
            pi = self.pi_create(ctx, q)
            self.owner[pi["id"]] = acct
            self.internal[pi["id"]]["invoice"] = inv["id"]
            self.internal[inv["id"]]["payment_intent"] = pi["id"]
            ip = {
                "id": "inpay_" + rand(),
                "object": "invoice_payment",
                "amount_paid": None,
                "amount_requested": inv["amount_due"],
                "created": now,
                "currency": inv["currency"],
                "invoice": inv["id"],
                "is_default": True,
                "livemode": False,
                "payment": {"payment_intent": pi["id"], "type": "payment_intent"},
                "status": "open",
                "status_transitions": {"canceled_at": None, "paid_at": None},
            }
            self._store("invoice_payment", ip, acct, index=("invoice",))
            self.internal[inv["id"]]["payments"].append(ip["id"])
        self._emit("invoice.finalized", inv, ctx, acct)
        if inv["amount_due"] == 0:
            self._invoice_mark_paid(ctx, inv, None)

    def _invoice_charge(self, ctx, inv, pm_id, off_session=True):
        """Attempt the invoice's PaymentIntent with pm_id; the outcome arrives through `_emit`'s hook."""
        pi = self.objects.get(self.internal[inv["id"]].get("payment_intent") or "")
        if pi is None or inv["status"] != "open" or pi["status"] in ("succeeded", "processing", "canceled"):
            return
        pm = self.objects.get(pm_id)
        if pm is None:
            return
        if off_session and self.internal.get(pm_id, {}).get("behaviour") == "3ds":
            # 4000 0025 0000 3155 asks once and is then exempt off-session; 3184 and 3220 always ask.
            if pm["card"]["last4"] == "3155" and self.internal[pm_id].get("setup_for_off_session"):
                self.internal[pi["id"]]["3ds_ok"] = True
        if pi["status"] == "requires_action":
            pi["status"] = "requires_payment_method"
        try:
            # Stripe Billing leaves an invoice's intent in requires_action for the customer to authenticate
            # (invoice.payment_action_required), unlike a direct off_session payment's 402.
            self._confirm(ctx, pi, pm_id, {"off_session": off_session, "_invoice_payment": True})
        except ApiError:
            pass  # a decline: recorded on the PaymentIntent and the invoice by the hook

    def _invoice_on_intent(self, ctx, inv, pi, type_):
        if inv["status"] != "open":
            return
        sub = self.objects[self.internal[inv["id"]]["subscription"]]
        acct = self.owner.get(inv["id"])
        if type_ != "payment_intent.succeeded" and self._is_resumption(sub, inv):
            self._resumption_attempt_failed(ctx, sub, inv, type_)
            return
        if type_ == "payment_intent.succeeded":
            if pi.get("setup_future_usage") == "off_session" or (
                sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
            ):
                pm = self.objects.get(pi.get("payment_method") or "")
                if pm is not None:
                    if not pm.get("customer"):
                        self._attach_pm(ctx, pm, self.objects[sub["customer"]])
                    self.internal.setdefault(pm["id"], {})["setup_for_off_session"] = True
                    if (
                        not sub["default_payment_method"]
                        and sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
                    ):
                        sub["default_payment_method"] = pm["id"]
            self._invoice_mark_paid(ctx, inv, pi)
        elif type_ == "payment_intent.payment_failed":
            inv["attempted"] = True
            inv["attempt_count"] += 1
            retries = self.config.get("subscription_retry_days") or RETRY_DAYS
            now = self._cust_now(inv["customer"])
            live = sub["status"] in LIVE_STATUSES
            if live and inv["billing_reason"] != "subscription_create" and inv["attempt_count"] <= len(retries):
                inv["next_payment_attempt"] = now + int(retries[inv["attempt_count"] - 1] * DAY)
            else:
                inv["next_payment_attempt"] = None
            self._emit("invoice.payment_failed", inv, ctx, acct)
            if sub["status"] == "active":
                self._sub_set_status(ctx, sub, "past_due")
            if live and inv["billing_reason"] != "subscription_create" and inv["next_payment_attempt"] is None:
                if self.config.get("subscription_failed_action") == "unpaid":
                    self._sub_end(ctx, sub, "payment_failed", status="unpaid")
                else:
                    self._sub_end(ctx, sub, "payment_failed")
        elif type_ == "payment_intent.requires_action":
            inv["attempted"] = True
            inv["attempt_count"] += 1
            inv["next_payment_attempt"] = None
            if sub["status"] != "incomplete":
                self._emit("invoice.payment_action_required", inv, ctx, acct)
            if sub["status"] == "active":
                self._sub_set_status(ctx, sub, "past_due")

    def _invoice_mark_paid(self, ctx, inv, pi, out_of_band=False):
        now = self._cust_now(inv["customer"])
        acct = self.owner.get(inv["id"])
        inv["amount_paid"] = inv["amount_due"]
        inv["amount_remaining"] = 0
        inv["attempted"] = True
        if pi is not None:
            inv["attempt_count"] += 1
        inv["next_payment_attempt"] = None
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = now
        for ip_id in self.internal[inv["id"]]["payments"]:
            ip = self.objects[ip_id]
            if pi is not None and ip["payment"].get("payment_intent") == pi["id"]:
                ip["status"] = "paid"
                ip["amount_paid"] = pi["amount_received"]
                ip["status_transitions"]["paid_at"] = now
                self._emit("invoice_payment.paid", ip, ctx, acct)
            elif ip["status"] == "open":
                ip["status"] = "canceled"
                ip["status_transitions"]["canceled_at"] = now
        sub = self.objects[self.internal[inv["id"]]["subscription"]]
        if self._is_resumption(sub, inv):
            self._sub_resumed(ctx, sub, "active")
        elif sub["status"] in ("incomplete", "past_due", "unpaid"):
            others_open = any(
                self.objects[i]["status"] == "open"
                for i in self.idx.get(("invoice", "subscription_id", sub["id"]), ())
                if i != inv["id"]
            )
            if not others_open:
                self._sub_set_status(ctx, sub, "active")
        elif sub["default_payment_method"] and sub["status"] == "active":
            pass
        self._emit("invoice.paid", inv, ctx, acct)
        self._emit("invoice.payment_succeeded", inv, ctx, acct)

    def _invoice_void(self, ctx, inv):
        inv["status"] = "void"
        inv["amount_remaining"] = 0
        inv["next_payment_attempt"] = None
        inv["status_transitions"]["voided_at"] = self._cust_now(inv["customer"])
        pi = self.objects.get(self.internal[inv["id"]].get("payment_intent") or "")
        if pi is not None and pi["status"] not in ("succeeded", "canceled"):
            pi["status"] = "canceled"
            pi["canceled_at"] = self._now()
            pi["cancellation_reason"] = "void_invoice"
            pi["next_action"] = None
            self._emit("payment_intent.canceled", pi, ctx, self.owner.get(pi["id"]))
        for ip_id in self.internal[inv["id"]]["payments"]:
            ip = self.objects[ip_id]
            if ip["status"] == "open":
                ip["status"] = "canceled"
                ip["status_transitions"]["canceled_at"] = inv["status_transitions"]["voided_at"]
        self._emit("invoice.voided", inv, ctx, self.owner.get(inv["id"]))

    def _inv(self, ctx, iid):
        return self._get("invoice", "invoice", iid, ctx)

    @route("GET", "/v1/invoices/{iid}")
    def invoice_retrieve(self, ctx, q, iid):
        validate(q, {"expand": STRLIST})
        return self._inv(ctx, iid)

    @route("GET", "/v1/invoices")
    def invoice_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        sub = self._pop_str(q, "subscription")
        status = self._pop_str(q, "status")
        q.pop("due_date", None)
        self._pop_str(q, "collection_method")

        def pred(o):
            return (not cust or o["customer"] == cust) and (not status or o["status"] == status)

        if sub:
            return self._list(ctx, q, "invoice", "/v1/invoices", index=("subscription_id", sub), pred=pred)
        if cust:
            return self._list(ctx, q, "invoice", "/v1/invoices", index=("customer", cust), pred=pred)
        return self._list(ctx, q, "invoice", "/v1/invoices", pred=pred)

    @route("GET", "/v1/invoices/{iid}/lines")
    def invoice_lines(self, ctx, q, iid):
        validate(q, {"limit": INT, "starting_after": STR, "ending_before": STR, "expand": STRLIST})
        inv = self._inv(ctx, iid)
        return dict(inv["lines"])

    @route("POST", "/v1/invoices/{iid}/finalize")
    def invoice_finalize(self, ctx, q, iid):
        validate(q, {"auto_advance": BOOL})
        inv = self._inv(ctx, iid)
        if inv["status"] != "draft":
            raise invalid("This invoice is already finalized.", code="invoice_not_editable")
        self._invoice_finalize(ctx, inv)
        return inv

    @route("POST", "/v1/invoices/{iid}/pay")
    def invoice_pay(self, ctx, q, iid):
        p = validate(
            q,
            {
                "payment_method": STR,
                "off_session": BOOL,
                "paid_out_of_band": BOOL,
                "forgive": BOOL,
                "source": STR,
                "mandate": STR,
            },
        )
        inv = self._inv(ctx, iid)
        if inv["status"] == "draft":
            self._invoice_finalize(ctx, inv)
        if inv["status"] == "paid":
            raise invalid("Invoice is already paid", code="invoice_already_paid")
        if inv["status"] != "open":
            raise invalid("You can only pay an open invoice; this one is %s." % inv["status"])
        if p.get("paid_out_of_band"):
            self._invoice_mark_paid(ctx, inv, None, out_of_band=True)
            return inv
        sub = self.objects[self.internal[inv["id"]]["subscription"]]
        pm_id = p.get("payment_method") or self._default_pm(sub)
        if pm_id:
            pm_id = self._resolve_pm(ctx, pm_id, "payment_method")["id"]
        if not pm_id:
            raise invalid(
                "This customer has no attached payment source or default payment method.",
                code="invoice_no_payment_method_types",
            )
        self._invoice_charge(ctx, inv, pm_id, off_session=p.get("off_session", True))
        if inv["status"] != "paid":
            pi = self.objects[self.internal[inv["id"]]["payment_intent"]]
            err = pi.get("last_payment_error") or {}
            if pi["status"] == "requires_action":
                raise ApiError(
                    402,
                    "This payment requires additional user action before it can be completed.",
                    type="card_error",
                    code="invoice_payment_intent_requires_action",
                )
            raise ApiError(
                402,
                err.get("message") or "Your card was declined.",
                type="card_error",
                code=err.get("code") or "card_declined",
                decline_code=err.get("decline_code"),
            )
        return inv

    @route("POST", "/v1/invoices/{iid}/void")
    def invoice_void(self, ctx, q, iid):
        validate(q, {})
        inv = self._inv(ctx, iid)
        if inv["status"] not in ("open", "uncollectible"):
            raise invalid("You can only void an open or uncollectible invoice; this one is %s." % inv["status"])
        self._invoice_void(ctx, inv)
        return inv

    @route("POST", "/v1/invoices/{iid}/mark_uncollectible")
    def invoice_mark_uncollectible(self, ctx, q, iid):
        validate(q, {})
        inv = self._inv(ctx, iid)
        if inv["status"] != "open":
            raise invalid("You can only mark an open invoice uncollectible; this one is %s." % inv["status"])
        inv["status"] = "uncollectible"
        inv["next_payment_attempt"] = None
        inv["status_transitions"]["marked_uncollectible_at"] = self._cust_now(inv["customer"])
        self._emit("invoice.marked_uncollectible", inv, ctx, self.owner.get(iid))
        sub = self.objects.get(self.internal[inv["id"]].get("subscription") or "")
        if sub is not None and self._is_resumption(sub, inv):
            self._sub_resumed(ctx, sub, "active")
        return inv

    @route("GET", "/v1/invoice_payments/{pid}")
    def invoice_payment_retrieve(self, ctx, q, pid):
        validate(q, {"expand": STRLIST})
        return self._get("invoice_payment", "invoice_payment", pid, ctx)

    @route("GET", "/v1/invoice_payments")
    def invoice_payment_list(self, ctx, q):
        inv = self._pop_str(q, "invoice")
        q.pop("payment", None)
        self._pop_str(q, "status")
        if inv:
            return self._list(ctx, q, "invoice_payment", "/v1/invoice_payments", index=("invoice", inv))
        return self._list(ctx, q, "invoice_payment", "/v1/invoice_payments")
