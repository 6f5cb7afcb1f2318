"""Subscription schedules (/v1/subscription_schedules) and changing a subscription's billing interval.

A schedule is made from an existing subscription (`from_subscription`): one phase, the subscription's
items from its current period start to its end, `end_behavior=release`. Updating `phases` plans what
comes next; the current phase's `start_date` cannot move, every phase but the last needs an `end_date`
or a `duration`, and the last one lasts one interval of its price when it has neither (the API version
has no `iterations`). When the customer's test clock passes a phase's end the next phase is applied to
the subscription (before a renewal due at the same second):

- the same interval: the price is swapped (prorated by the phase's `proration_behavior` when the phase
  starts mid-period; at a period end there is nothing to prorate) and the renewal bills the new price;
- another interval (or `billing_cycle_anchor=phase_start`): the billing cycle anchor becomes the phase
  start, and the new period is invoiced at once (`billing_reason=subscription_update`), with a credit for
  the unused time of the old period if there is any.

After the last phase the schedule is released (`released`, `subscription_schedule.released`) or, with
`end_behavior=cancel`, the subscription is canceled and the schedule `completed`. `release` leaves the
subscription as it stands; `cancel` cancels the subscription now; cancelling the subscription itself
cancels its schedule. While a schedule manages a subscription its cancellation cannot be changed on the
subscription (`cancel_at_period_end`), as on Stripe.

A plain `POST /v1/subscriptions/{id}` with a price of another interval also resets the cycle: the anchor
becomes now and the new period is invoiced at once, crediting the unused time (`_sub_reset_cycle`).

Not emulated: schedules created from `customer` + `phases` (a subscription starting later), trials,
`add_invoice_items`, coupons, `default_settings` (accepted, not applied), test clocks of schedules without
a subscription, phase transitions on the emulator's own clock (renewals only follow test clocks).
"""

from ..params import ANY, INT, META, STR, ApiError, enum, invalid, listof, obj, require, validate
from .router import route
from .state import jcopy, rand
from .subscriptions import add_interval

SCHEDULE_LIVE = ("not_started", "active")
PHASE = obj(
    items=listof(obj(price=STR, quantity=INT, metadata=META)),
    start_date=INT,
    end_date=INT,
    duration=obj(interval=enum("day", "week", "month", "year"), interval_count=INT),
    proration_behavior=enum("create_prorations", "none", "always_invoice"),
    billing_cycle_anchor=enum("automatic", "phase_start"),
    metadata=META,
    description=STR,
    default_payment_method=STR,
    collection_method=enum("charge_automatically"),
    application_fee_percent=STR,
    transfer_data=ANY,
    automatic_tax=ANY,
    invoice_settings=ANY,
)


class SubscriptionSchedulesMixin:
    # ------------------------------------------------------------ hooks into subscriptions and clocks
    def _sub_due(self, sub):
        """A phase boundary comes before anything else due at the same second (the renewal)."""
        due = super()._sub_due(sub)
        sched = self.objects.get(sub.get("schedule") or "")
        if sched is not None and sched["status"] == "active" and sub["status"] in ("active", "past_due"):
            due.insert(0, (sched["current_phase"]["end_date"], "schedule:" + sched["id"]))
        return due

    def _clock_run(self, ctx, kind, sub):
        if kind.startswith("schedule:"):
            self._schedule_advance(ctx, self.objects[kind.split(":", 1)[1]], sub)
            return
        super()._clock_run(ctx, kind, sub)

    def _sub_end(self, ctx, sub, reason, status="canceled", comment=None):
        super()._sub_end(ctx, sub, reason, status=status, comment=comment)
        sched = self.objects.get(sub.get("schedule") or "")
        if sched is not None and sched["status"] in SCHEDULE_LIVE and sub["status"] != "unpaid":
            self._schedule_finish(ctx, sched, "canceled")

    # ------------------------------------------------------------ the object
    def _phase_obj(self, start, end, items, currency, p=None):
        p = p or {}
        return {
            "add_invoice_items": [],
            "application_fee_percent": None,
            "billing_cycle_anchor": p.get("billing_cycle_anchor"),
            "billing_thresholds": None,
            "collection_method": None,
            "currency": currency,
            "default_payment_method": p.get("default_payment_method"),
            "default_tax_rates": [],
            "description": p.get("description"),
            "discounts": [],
            "end_date": end,
            "invoice_settings": None,
            "items": [
                {
                    "billing_thresholds": None,
                    "discounts": [],
                    "metadata": dict(it.get("metadata") or {}),
                    "plan": it["price"],
                    "price": it["price"],
                    "quantity": it.get("quantity", 1),
                    "tax_rates": [],
                }
                for it in items
            ],
            "metadata": dict(p.get("metadata") or {}),
            "on_behalf_of": None,
            "proration_behavior": p.get("proration_behavior") or "create_prorations",
            "start_date": start,
            "transfer_data": None,
            "trial_end": None,
        }

    def _sched(self, ctx, sid):
        return self._get("subscription_schedule", "subscription_schedule", sid, ctx)

    @route("POST", "/v1/subscription_schedules")
    def schedule_create(self, ctx, q):
        p = validate(
            q,
            {
                "from_subscription": STR,
                "customer": STR,
                "phases": ANY,
                "start_date": ANY,
                "end_behavior": enum("release", "cancel"),
                "metadata": META,
                "default_settings": ANY,
                "billing_mode": ANY,
            },
        )
        if not p.get("from_subscription"):
            if p.get("customer"):
                raise invalid(
                    "The emulator creates subscription schedules only from an existing subscription "
                    "(from_subscription).",
                    param="customer",
                )
            require(p, "from_subscription")
        if p.get("from_subscription") and ("phases" in p or "customer" in p or "start_date" in p):
            bad = next(k for k in ("phases", "customer", "start_date") if k in p)
            raise invalid(
                "You cannot set `%s` if `from_subscription` is set." % bad, param=bad, code="parameter_unknown"
            )
        sub = self._get("subscription", "subscription", p["from_subscription"], ctx, "from_subscription", 400)
        if sub.get("schedule"):
            raise invalid(
                "You cannot migrate a subscription that is already attached to a schedule: `%s`." % sub["schedule"],
                param="from_subscription",
            )
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(
                "You cannot create a subscription schedule from a canceled subscription.", param="from_subscription"
            )
        now = self._cust_now(sub["customer"])
        start, end = self._period(sub)
        items = [{"price": it["price"]["id"], "quantity": it["quantity"]} for it in sub["items"]["data"]]
        sid = "sub_sched_" + rand()
        sched = {
            "id": sid,
            "object": "subscription_schedule",
            "application": None,
            "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"}},
            "canceled_at": None,
            "completed_at": None,
            "created": now,
            "current_phase": {"end_date": end, "start_date": start},
            "customer": sub["customer"],
            "customer_account": None,
            "default_settings": {
                "application_fee_percent": None,
                "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
                "billing_cycle_anchor": "automatic",
                "billing_thresholds": None,
                "collection_method": "charge_automatically",
                "default_payment_method": None,
                "description": None,
                "invoice_settings": {"account_tax_ids": None, "days_until_due": None, "issuer": {"type": "self"}},
                "on_behalf_of": None,
                "transfer_data": None,
            },
            "end_behavior": p.get("end_behavior") or "release",
            "livemode": False,
            "metadata": {},
            "phases": [self._phase_obj(start, end, items, sub["currency"])],
            "released_at": None,
            "released_subscription": None,
            "status": "active",
            "subscription": sub["id"],
            "test_clock": sub.get("test_clock"),
        }
        self._apply_metadata(sched, p.get("metadata"))
        acct = self.owner.get(sub["id"])
        self._store("subscription_schedule", sched, acct, index=("customer",))
        self._emit("subscription_schedule.created", sched, ctx, acct)
        sub["schedule"] = sid
        self._emit("customer.subscription.updated", sub, ctx, acct, {"schedule": None})
        return sched

    @route("GET", "/v1/subscription_schedules/{sid}")
    def schedule_retrieve(self, ctx, q, sid):
        validate(q, {"expand": ANY})
        return self._sched(ctx, sid)

    @route("GET", "/v1/subscription_schedules")
    def schedule_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        for k in ("canceled_at", "completed_at", "created", "released_at", "scheduled", "customer_account"):
            q.pop(k, None)
        if cust:
            return self._list(ctx, q, "subscription_schedule", "/v1/subscription_schedules", index=("customer", cust))
        return self._list(ctx, q, "subscription_schedule", "/v1/subscription_schedules")

    @route("POST", "/v1/subscription_schedules/{sid}")
    def schedule_update(self, ctx, q, sid):
        p = validate(
            q,
            {
                "phases": listof(PHASE),
                "end_behavior": enum("release", "cancel"),
                "metadata": META,
                "proration_behavior": enum("create_prorations", "none", "always_invoice"),
                "default_settings": ANY,
            },
        )
        sched = self._sched(ctx, sid)
        if sched["status"] not in SCHEDULE_LIVE:
            raise invalid("You cannot update a subscription schedule that is %s." % sched["status"])
        before = jcopy(sched)
        if "phases" in p:
            sched["phases"] = self._schedule_phases(ctx, sched, p["phases"])
            sched["current_phase"] = {
                "end_date": sched["phases"][0]["end_date"],
                "start_date": sched["phases"][0]["start_date"],
            }
        if p.get("end_behavior"):
            sched["end_behavior"] = p["end_behavior"]
        self._apply_metadata(sched, p.get("metadata"))
        prev = self._diff(before, sched)
        if prev:
            self._emit("subscription_schedule.updated", sched, ctx, self.owner.get(sid), prev)
        return sched

    def _schedule_phases(self, ctx, sched, phases):
        """Validate the new phases of an active schedule; phase 0 is the current one."""
        if not phases:
            raise invalid("You must pass at least one phase.", param="phases")
        sub = self.objects[sched["subscription"]]
        current_start = sched["current_phase"]["start_date"]
        now = self._cust_now(sub["customer"])
        out = []
        prev_end = None
        for i, ph in enumerate(phases):
            name = "phases[%d]" % i
            items = ph.get("items") or []
            if not items:
                raise ApiError(
                    400, "Missing required param: %s[items]." % name, code="parameter_missing", param=name + "[items]"
                )
            prices = []
            for j, it in enumerate(items):
                if not it.get("price"):
                    raise ApiError(
                        400,
                        "Missing required param: %s[items][%d][price]." % (name, j),
                        code="parameter_missing",
                        param="%s[items][%d][price]" % (name, j),
                    )
                prices.append(self._recurring_price(ctx, it["price"], "%s[items][%d][price]" % (name, j)))
            first = prices[0]
            for pr in prices[1:]:
                if pr["recurring"]["interval"] != first["recurring"]["interval"]:
                    raise invalid("All prices in a phase must have the same interval.", param=name + "[items]")
            if any(pr["currency"] != sub["currency"] for pr in prices):
                raise invalid(
                    "The currency of every phase must be the subscription's (%s)." % sub["currency"], param=name
                )
            if i == 0:
                start = ph.get("start_date", current_start)
                if start != current_start:
                    raise invalid(
                        "You can not modify the start date of the current phase.", param=name + "[start_date]"
                    )
            else:
                start = ph.get("start_date", prev_end)
                if start != prev_end:
                    raise invalid(
                        "The start_date of a phase must be the end_date of the phase before it.",
                        param=name + "[start_date]",
                    )
            if ph.get("end_date") is not None and ph.get("duration"):
                raise invalid("You may only set one of end_date and duration.", param=name + "[duration]")
            if ph.get("end_date") is not None:
                end = ph["end_date"]
            elif ph.get("duration"):
                d = ph["duration"]
                if not d.get("interval"):
                    raise ApiError(
                        400,
                        "Missing required param: %s[duration][interval]." % name,
                        code="parameter_missing",
                        param=name + "[duration][interval]",
                    )
                end = add_interval(start, 1, d["interval"], d.get("interval_count") or 1)
            elif i == len(phases) - 1:
                rec = first["recurring"]
                end = add_interval(start, 1, rec["interval"], rec["interval_count"])
            else:
                raise invalid("Every phase but the last needs an end_date or a duration.", param=name + "[end_date]")
            if end <= start:
                raise invalid("The end_date of a phase must be after its start_date.", param=name + "[end_date]")
            if i == 0 and end <= now:
                raise invalid("The current phase must end in the future.", param=name + "[end_date]")
            out.append(self._phase_obj(start, end, items, sub["currency"], ph))
            prev_end = end
        # the current phase's items are the subscription's: the emulator applies a phase only at its start
        return out

    @route("POST", "/v1/subscription_schedules/{sid}/release")
    def schedule_release(self, ctx, q, sid):
        validate(q, {"preserve_cancel_date": ANY})
        sched = self._sched(ctx, sid)
        if sched["status"] not in SCHEDULE_LIVE:
            raise invalid("You cannot release a subscription schedule that is currently %s." % sched["status"])
        self._schedule_finish(ctx, sched, "released")
        return sched

    @route("POST", "/v1/subscription_schedules/{sid}/cancel")
    def schedule_cancel(self, ctx, q, sid):
        validate(q, {"invoice_now": ANY, "prorate": ANY})
        sched = self._sched(ctx, sid)
        if sched["status"] not in SCHEDULE_LIVE:
            raise invalid("You cannot cancel a subscription schedule that is currently %s." % sched["status"])
        sub = self.objects.get(sched["subscription"] or "")
        if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
            self._sub_end(ctx, sub, "cancellation_requested")  # cancels the schedule through the hook
        if sched["status"] in SCHEDULE_LIVE:
            self._schedule_finish(ctx, sched, "canceled")
        return sched

    # ------------------------------------------------------------ time passing
    def _schedule_finish(self, ctx, sched, how):
        """released / canceled / completed: the schedule stops managing its subscription."""
        sub = self.objects.get(sched["subscription"] or "")
        now = self._cust_now(sched["customer"])
        acct = self.owner.get(sched["id"])
        sched["current_phase"] = None
        sched["status"] = how
        if how == "released":
            sched["released_at"] = now
            sched["released_subscription"] = sched["subscription"]
            sched["subscription"] = None
        elif how == "canceled":
            sched["canceled_at"] = now
        else:
            sched["completed_at"] = now
        self._emit("subscription_schedule." + how, sched, ctx, acct)
        if sub is not None and sub.get("schedule") == sched["id"] and how == "released":
            sub["schedule"] = None
            self._emit("customer.subscription.updated", sub, ctx, acct, {"schedule": sched["id"]})

    def _schedule_advance(self, ctx, sched, sub):
        """The current phase has ended (the clock is at its end_date): apply the next, or end the schedule."""
        acct = self.owner.get(sched["id"])
        at = sched["current_phase"]["end_date"]
        idx = next((i for i, ph in enumerate(sched["phases"]) if ph["start_date"] == at), None)
        if idx is None:
            if sched["end_behavior"] == "cancel":
                self._schedule_finish(ctx, sched, "completed")
                self._sub_end(ctx, sub, "cancellation_requested")
            else:
                self._schedule_finish(ctx, sched, "released")
            return
        phase = sched["phases"][idx]
        before_sched = jcopy(sched)
        sched["current_phase"] = {"end_date": phase["end_date"], "start_date": phase["start_date"]}
        self._emit("subscription_schedule.updated", sched, ctx, acct, self._diff(before_sched, sched))
        self._sub_apply_phase(ctx, sub, phase, at)

    def _sub_apply_phase(self, ctx, sub, phase, at):
        item = sub["items"]["data"][0]
        new = phase["items"][0]
        price = self.objects[new["price"]]
        old_rec, new_rec = item["price"]["recurring"], price["recurring"]
        reset = (old_rec["interval"], old_rec["interval_count"]) != (new_rec["interval"], new_rec["interval_count"])
        reset = reset or phase.get("billing_cycle_anchor") == "phase_start"
        behaviour = phase["proration_behavior"]
        before = jcopy(sub)
        old_price, old_quantity = item["price"], item["quantity"]
        credit = []
        if reset:
            credit = self._unused_credit(sub, item, at, behaviour)
        elif (price["id"], new.get("quantity", 1)) != (old_price["id"], old_quantity):
            start, end = self._period(sub)
            if start < at < end and behaviour != "none":
                self.internal[sub["id"]]["pending"].extend(
                    self._proration_pair(sub, item, price, new.get("quantity", 1), at)
                )
        item["price"] = jcopy(price)
        item["plan"] = self._plan_of(price)
        item["quantity"] = new.get("quantity", 1)
        if reset:
            self._sub_new_anchor(sub, at)
        prev = self._diff(before, sub)
        if prev:
            self._emit("customer.subscription.updated", sub, ctx, self.owner.get(sub["id"]), prev)
        if reset:
            self._sub_invoice_new_cycle(ctx, sub, credit, at)

    # ------------------------------------------------------------ resetting the billing cycle
    def _unused_credit(self, sub, item, at, behaviour):
        """The credit for the unused rest of the current period at `at` (none at or after its end)."""
        start, end = self._period(sub)
        if behaviour == "none" or not start <= at < end:
            return []
        return self._rest_of_period_line(sub, item, at, -1, "Unused time on %s")

    def _rest_of_period_line(self, sub, item, at, sign, label):
        """The item's price for the rest of the current period from `at`, credited (sign -1) or charged
        (sign 1) as a proration line; [] when it rounds to nothing."""
        start, end = self._period(sub)
        amount = sign * round(item["price"]["unit_amount"] * item["quantity"] * (end - at) / float(end - start))
        if not amount:
            return []
        return [
            self._line(
                amount,
                label % self._price_label(item["price"]),
                item["price"],
                item["quantity"],
                {"start": at, "end": end},
                True,
                sub["id"],
                item["id"],
            )
        ]

    def _proration_pair(self, sub, item, price, quantity, at):
        start, end = self._period(sub)
        fraction = (end - at) / float(end - start)
        period = {"start": at, "end": end}
        old_amount = item["price"]["unit_amount"] * item["quantity"]
        return [
            self._line(
                -round(old_amount * fraction),
                "Unused time on %s" % self._price_label(item["price"]),
                item["price"],
                item["quantity"],
                period,
                True,
                sub["id"],
                item["id"],
            ),
            self._line(
                round(price["unit_amount"] * quantity * fraction),
                "Remaining time on %s" % self._price_label(price),
                price,
                quantity,
                period,
                True,
                sub["id"],
                item["id"],
            ),
        ]

    def _sub_new_anchor(self, sub, at):
        sub["billing_cycle_anchor"] = at
        data = self.internal[sub["id"]]
        data["k"] = 0
        data["upcoming_for"] = None
        self._set_period(sub)

    def _sub_invoice_new_cycle(self, ctx, sub, credit, at):
        """Invoice the period that starts now (after a reset of the anchor), with what is pending."""
        start, end = self._period(sub)
        data = self.internal[sub["id"]]
        lines = data["pending"] + credit + self._cycle_lines(sub, start, end)
        data["pending"] = []
        inv = self._invoice_new(ctx, sub, "subscription_update", lines, start, end)
        self._invoice_finalize(ctx, inv)
        if inv["status"] == "open":
            pm_id = self._default_pm(sub)
            if pm_id:
                self._invoice_charge(ctx, inv, pm_id, off_session=True)
            else:
                pi = self.objects[self.internal[inv["id"]]["payment_intent"]]
                self._invoice_on_intent(ctx, inv, pi, "payment_intent.payment_failed")
        return inv

    def _sub_reset_cycle(self, sub, item, at, behaviour):
        """A plain update to a price of another interval (called by sub_update before its event): the credit
        for the unused time, and the anchor moved to `at`. The caller invoices with `_sub_invoice_new_cycle`."""
        if len(sub["items"]["data"]) > 1:
            raise invalid("All prices on a subscription must have the same interval and currency.", param="items")
        credit = self._unused_credit(sub, item, at, behaviour)
        return credit
