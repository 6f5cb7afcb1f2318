"""Test clocks (/v1/test_helpers/test_clocks): customers created with `test_clock` live in the clock's time,
and advancing it runs everything that falls due on their subscriptions, in time order: `invoice.upcoming`
three days ahead, renewals at each period end (the renewal invoice a draft for an hour, then finalized and
charged, as Stripe does), retries of failed invoices, cancellations at period end and
the expiry of incomplete subscriptions. Advancing is synchronous (the clock is `ready` when the call returns,
after `test_helpers.test_clock.advancing` and `.ready` were sent)."""

from ..params import INT, STR, STRLIST, ApiError, invalid, require, validate
from .router import route
from .state import Ctx, rand
from .subscriptions import DAY, INCOMPLETE_EXPIRY, UPCOMING_DAYS

RENEWAL_DRAFT_SECONDS = 3600  # Stripe finalizes a subscription's renewal invoice about an hour after its draft


class TestClocksMixin:
    @route("POST", "/v1/test_helpers.test_clocks")
    def clock_create(self, ctx, q):
        p = validate(q, {"frozen_time": INT, "name": STR})
        require(p, "frozen_time")
        clock = {
            "id": "clock_" + rand(),
            "object": "test_helpers.test_clock",
            "created": self._now(),
            "deletes_after": self._now() + 30 * DAY,
            "frozen_time": p["frozen_time"],
            "livemode": False,
            "name": p.get("name") or None,
            "status": "ready",
            "status_details": {},
        }
        self._store("test_helpers.test_clock", clock, ctx.account)
        self._emit("test_helpers.test_clock.created", clock, ctx, ctx.account)
        return clock

    @route("GET", "/v1/test_helpers.test_clocks/{cid}")
    def clock_retrieve(self, ctx, q, cid):
        validate(q, {"expand": STRLIST})
        return self._get("test_helpers.test_clock", "test_clock", cid, ctx)

    @route("GET", "/v1/test_helpers.test_clocks")
    def clock_list(self, ctx, q):
        return self._list(ctx, q, "test_helpers.test_clock", "/v1/test_helpers/test_clocks")

    @route("DELETE", "/v1/test_helpers.test_clocks/{cid}")
    def clock_delete(self, ctx, q, cid):
        validate(q, {})
        clock = self._get("test_helpers.test_clock", "test_clock", cid, ctx)
        clock["deleted"] = True
        for cus in self._clock_customers(cid):
            cus["deleted"] = True
        self._emit("test_helpers.test_clock.deleted", dict(clock, deleted=None), ctx, ctx.account)
        return {"id": cid, "object": "test_helpers.test_clock", "deleted": True}

    @route("POST", "/v1/test_helpers.test_clocks/{cid}/advance")
    def advance_test_clock(self, ctx, q, cid):
        p = validate(q, {"frozen_time": INT})
        require(p, "frozen_time")
        clock = self._get("test_helpers.test_clock", "test_clock", cid, ctx)
        target = p["frozen_time"]
        if target <= clock["frozen_time"]:
            raise invalid("The frozen time must be after the test clock's current frozen time.", param="frozen_time")
        clock["status"] = "advancing"
        clock["status_details"] = {"advancing": {"target_frozen_time": target}}
        self._emit("test_helpers.test_clock.advancing", clock, ctx, ctx.account)
        inner = Ctx()
        inner.account = ctx.account
        inner.base_url = ctx.base_url
        try:
            while True:
                due = self._clock_next_due(cid, target)
                if due is None:
                    break
                at, kind, sub = due
                clock["frozen_time"] = max(clock["frozen_time"], at)
                self._clock_run(inner, kind, sub)
        except ApiError:
            raise
        finally:
            clock["frozen_time"] = target
            clock["status"] = "ready"
            clock["status_details"] = {}
        self._emit("test_helpers.test_clock.ready", clock, ctx, ctx.account)
        return clock

    # ------------------------------------------------------------ what falls due
    def _clock_customers(self, cid):
        return [
            c
            for c in (self.objects.get(i) for i in self.order["customer"])
            if c and c.get("test_clock") == cid and not c.get("deleted")
        ]

    def _clock_next_due(self, cid, target):
        """The earliest (time, kind, subscription) due at or before `target`, or None."""
        best = None
        for cus in self._clock_customers(cid):
            for sid in self.idx.get(("subscription", "customer", cus["id"]), ()):
                sub = self.objects[sid]
                for at, kind in self._sub_due(sub):
                    if at <= target and (best is None or at < best[0]):
                        best = (at, kind, sub)
        return best

    def _sub_due(self, sub):
        st = sub["status"]
        if st == "incomplete":
            return [(sub["created"] + INCOMPLETE_EXPIRY, "expire")]
        if st == "paused":
            return self._resumption_due(sub)
        if st not in ("active", "past_due"):
            return []
        start, end = self._period(sub)
        due = [(end, "renew")]
        data = self.internal[sub["id"]]
        upcoming = end - UPCOMING_DAYS * DAY
        if data.get("upcoming_for") != end and upcoming > start and not sub["cancel_at_period_end"]:
            due.append((upcoming, "upcoming"))
        for iid in self.idx.get(("invoice", "subscription_id", sub["id"]), ()):
            inv = self.objects[iid]
            if inv["status"] == "open" and inv["next_payment_attempt"]:
                due.append((inv["next_payment_attempt"], "retry:" + iid))
            if inv["status"] == "draft" and inv["auto_advance"] and inv["automatically_finalizes_at"]:
                due.append((inv["automatically_finalizes_at"], "finalize:" + iid))
        return due

    def _clock_run(self, ctx, kind, sub):
        acct = self.owner.get(sub["id"])
        if kind == "expire":
            self._sub_end(ctx, sub, "incomplete_expired")
            return
        if kind == "upcoming":
            start, end = self._period(sub)
            self.internal[sub["id"]]["upcoming_for"] = end
            preview = self._invoice_preview(sub)
            self._emit("invoice.upcoming", preview, ctx, acct)
            return
        if kind.startswith("finalize:"):
            # a renewal's draft, an hour after it was created: finalized, then its payment attempted
            inv = self.objects[kind.split(":", 1)[1]]
            self._invoice_finalize(ctx, inv)
            self._invoice_collect(ctx, sub, inv)
            return
        if kind.startswith("resumption_expire:"):
            self._resumption_expire(ctx, sub, self.objects[kind.split(":", 1)[1]])
            return
        if kind.startswith("retry:"):
            inv = self.objects[kind.split(":", 1)[1]]
            inv["next_payment_attempt"] = None
            pm_id = self._default_pm(sub)
            if pm_id:
                self._invoice_charge(ctx, inv, pm_id, off_session=True)
            else:
                pi = self.objects[self.internal[inv["id"]]["payment_intent"]]
                self._invoice_on_intent(ctx, inv, pi, "payment_intent.payment_failed")
            return
        # renew
        if sub["cancel_at_period_end"]:
            self._sub_end(ctx, sub, "cancellation_requested")
            return
        before_period = self._period(sub)
        self.internal[sub["id"]]["k"] += 1
        start, end = self._set_period(sub)
        self._emit(
            "customer.subscription.updated",
            sub,
            ctx,
            acct,
            {"items": {"data": [{"current_period_start": before_period[0], "current_period_end": before_period[1]}]}},
        )
        inv = self._invoice_new(ctx, sub, "subscription_cycle", self._cycle_lines(sub, start, end), start, end)
        pause = sub.get("pause_collection")
        if pause:
            if pause["behavior"] == "keep_as_draft":
                return
            self._invoice_finalize(ctx, inv)
            if inv["status"] == "open":
                if pause["behavior"] == "void":
                    self._invoice_void(ctx, inv)
                else:
                    inv["status"] = "uncollectible"
                    self._emit("invoice.marked_uncollectible", inv, ctx, acct)
            return
        # As on Stripe, a renewal invoice stays a draft for about an hour (invoice.created; it can still be
        # edited), then is finalized and charged (`automatically_finalizes_at`).
        inv["automatically_finalizes_at"] = inv["created"] + RENEWAL_DRAFT_SECONDS

    def _invoice_collect(self, ctx, sub, inv):
        """Charge a just-finalized invoice off-session to the default payment method (none: it fails)."""
        if inv["status"] == "open":
            pm_id = self._default_pm(sub)
            if pm_id:
                self._invoice_charge(ctx, inv, pm_id, off_session=True)
            else:
                pi = self.objects[self.internal[inv["id"]]["payment_intent"]]
                self._invoice_on_intent(ctx, inv, pi, "payment_intent.payment_failed")

    def _invoice_preview(self, sub):
        """The next invoice as `invoice.upcoming` shows it: no id, not stored."""
        start, end = self._period(sub)
        data = self.internal[sub["id"]]
        rec = sub["items"]["data"][0]["price"]["recurring"]
        from .subscriptions import add_interval

        nxt = add_interval(sub["billing_cycle_anchor"], data["k"] + 2, rec["interval"], rec["interval_count"])
        lines = data["pending"] + self._cycle_lines(sub, end, nxt)
        total = sum(ln["amount"] for ln in lines)
        return {
            "object": "invoice",
            "amount_due": max(total, 0),
            "amount_paid": 0,
            "amount_remaining": max(total, 0),
            "billing_reason": "upcoming",
            "created": end,
            "currency": sub["currency"],
            "customer": sub["customer"],
            "lines": {"object": "list", "data": lines, "has_more": False, "url": "/v1/invoices/upcoming/lines"},
            "livemode": False,
            "next_payment_attempt": end,
            "parent": {
                "quote_details": None,
                "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
                "type": "subscription_details",
            },
            "period_end": nxt,
            "period_start": end,
            "status": "draft",
            "subtotal": total,
            "total": total,
        }
