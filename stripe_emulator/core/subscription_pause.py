"""Pausing a subscription (`POST /v1/subscriptions/{id}/pause`) and resuming it (`.../resume`), as API
2026-09-30.endive added them (flexible billing mode).

Pause (an `active` or `past_due` subscription without a schedule): status `paused` with `status_details.paused`
(`type=subscription`, `subscription.type=pause_requested`, `transitioned_at`), events
`customer.subscription.updated` then `customer.subscription.paused`. No invoices while paused and the period
does not advance. `bill_for[unused_time_from][type]` credits the unused time: `now` (the default) from now to
the period end, `item_current_period_start` the whole period, `none` nothing; the credit is a pending invoice
item (`invoicing_behavior=pending_invoice_item`, the default, on the next invoice) or invoiced at once
(`invoice`).

Resume (a `paused` subscription):
- `billing_cycle_anchor` (`now`, the default, or `unchanged`; given as `billing_cycle_anchor[type]` in this
  version, the plain string is accepted too). `now`: a new period starts now, invoiced at once
  (`billing_reason=subscription_update`, the resumption invoice, with what is pending). `unchanged`: the
  subscription moves to the period that surrounds now on its anchor; `proration_behavior` create_prorations
  (the default) adds the remaining time as a pending item, always_invoice invoices it now (a resumption
  invoice), none bills nothing until the next period.
- no resumption invoice (or one of nothing): active at once, `customer.subscription.resumed`.
- a resumption invoice, `payment_behavior=resume_on_payment_success`: charged now off-session; paid → active
  and resumed; a failure keeps it `paused` and Stripe retries on the usual schedule.
  `resume_on_payment_attempt` (the default): no attempt in the request; the first attempt (`/v1/invoices/{id}/pay`
  or confirming its PaymentIntent) resumes it: `active` when it pays, `past_due` (no retries) when it fails.
  Marked uncollectible → active; voided → stays paused; not attempted within 23 hours → voided, stays paused.

Not emulated: the trial-end and payment-failure pauses (`status_details.paused.subscription.type`
`trial_end_without_payment_method`, `first_payment_failure`, `final_payment_failure`), pause schedules,
metered usage (`outstanding_usage_through` is accepted and has nothing to bill).
"""

from ..params import ANY, INT, STRLIST, enum, invalid, obj, validate
from .router import route
from .state import jcopy

RESUMPTION_EXPIRY = 23 * 3600
PAUSABLE = ("active", "past_due")


class SubscriptionPauseMixin:
    SUB_PAUSE = {
        "type": enum("subscription"),
        "bill_for": obj(
            outstanding_usage_through=obj(type=enum("none", "now")),
            unused_time_from=obj(type=enum("item_current_period_start", "none", "now")),
        ),
        "invoicing_behavior": enum("invoice", "pending_invoice_item"),
        "expand": STRLIST,
    }

    @route("POST", "/v1/subscriptions/{sid}/pause")
    def sub_pause(self, ctx, q, sid):
        p = validate(q, self.SUB_PAUSE)
        sub = self._get("subscription", "subscription", sid, ctx)
        if sub["status"] not in PAUSABLE:
            raise invalid(
                "Only an active or past_due subscription can be paused; this one is %s." % sub["status"],
                code="subscription_unexpected_state",
            )
        if sub.get("schedule"):
            raise invalid(
                "The subscription is managed by the subscription schedule `%s` and cannot be paused; release "
                "the schedule first." % sub["schedule"],
                code="subscription_unexpected_state",
            )
        now = self._cust_now(sub["customer"])
        credit_from = (((p.get("bill_for") or {}).get("unused_time_from")) or {}).get("type") or "now"
        credit = []
        for item in sub["items"]["data"]:
            start, _end = self._period(sub)
            at = {"now": now, "item_current_period_start": start}.get(credit_from)
            if at is not None:
                credit += self._unused_credit(sub, item, at, "create_prorations")
        if credit and p.get("invoicing_behavior") == "invoice":
            start, end = self._period(sub)
            inv = self._invoice_new(ctx, sub, "subscription_update", credit, now, end)
            self._invoice_finalize(ctx, inv)
        else:
            self.internal[sid]["pending"].extend(credit)
        before = jcopy(sub)
        sub["status"] = "paused"
        sub["status_details"] = {
            "paused": {"subscription": {"type": "pause_requested"}, "transitioned_at": now, "type": "subscription"}
        }
        acct = self.owner.get(sid)
        self._emit("customer.subscription.updated", sub, ctx, acct, self._diff(before, sub))
        self._emit("customer.subscription.paused", sub, ctx, acct)
        return sub

    SUB_RESUME = {
        "billing_cycle_anchor": ANY,
        "proration_behavior": enum("always_invoice", "create_prorations", "none"),
        "proration_date": INT,
        "payment_behavior": enum("resume_on_payment_attempt", "resume_on_payment_success"),
        "expand": STRLIST,
    }

    @route("POST", "/v1/subscriptions/{sid}/resume")
    def sub_resume(self, ctx, q, sid):
        p = validate(q, self.SUB_RESUME)
        anchor = p.get("billing_cycle_anchor") or "now"
        if isinstance(anchor, dict):
            anchor = anchor.get("type") or "now"
        if anchor not in ("now", "unchanged"):
            raise invalid(
                "Invalid billing_cycle_anchor[type]: must be one of now or unchanged",
                param="billing_cycle_anchor[type]",
            )
        sub = self._get("subscription", "subscription", sid, ctx)
        if sub["status"] != "paused":
            raise invalid(
                "Only a subscription with status paused can be resumed; this one is %s." % sub["status"],
                code="subscription_unexpected_state",
            )
        data = self.internal[sid]
        waiting = self.objects.get(data.get("resumption") or "")
        if waiting is not None and waiting["status"] == "open":
            raise invalid(
                "This subscription's resumption invoice %s is awaiting payment; pay, void or mark it "
                "uncollectible first." % waiting["id"],
                code="subscription_unexpected_state",
            )
        now = self._cust_now(sub["customer"])
        behaviour = p.get("payment_behavior") or "resume_on_payment_attempt"
        inv = None
        if anchor == "now":
            self._sub_new_anchor(sub, now)
            start, end = self._period(sub)
            lines = data["pending"] + self._cycle_lines(sub, start, end)
            data["pending"] = []
            inv = self._invoice_new(ctx, sub, "subscription_update", lines, start, end)
        else:
            start, end = self._period(sub)
            while end <= now:
                data["k"] += 1
                start, end = self._set_period(sub)
            proration = p.get("proration_behavior") or "create_prorations"
            at = min(max(p.get("proration_date", now), start), end)
            lines = []
            if proration != "none" and at < end:
                for item in sub["items"]["data"]:
                    lines += self._rest_of_period_line(sub, item, at, 1, "Remaining time on %s")
            if proration == "always_invoice" and lines:
                inv = self._invoice_new(ctx, sub, "subscription_update", data["pending"] + lines, at, end)
                data["pending"] = []
            else:
                data["pending"].extend(lines)
        if inv is not None:
            self._invoice_finalize(ctx, inv)
        if inv is None or inv["status"] != "open":
            self._sub_resumed(ctx, sub, "active")
            return sub
        data["resumption"] = inv["id"]
        data["resume_behaviour"] = behaviour
        if behaviour == "resume_on_payment_success":
            pm_id = self._default_pm(sub)
            if pm_id:
                self._invoice_charge(ctx, inv, pm_id, off_session=True)
        return sub

    def _sub_resumed(self, ctx, sub, status):
        """Out of `paused`: `customer.subscription.updated` then `customer.subscription.resumed`."""
        data = self.internal[sub["id"]]
        data.pop("resumption", None)
        data.pop("resume_behaviour", None)
        before = jcopy(sub)
        sub["status"] = status
        sub["status_details"] = None
        acct = self.owner.get(sub["id"])
        self._emit("customer.subscription.updated", sub, ctx, acct, self._diff(before, sub))
        self._emit("customer.subscription.resumed", sub, ctx, acct)

    def _is_resumption(self, sub, inv):
        return sub["status"] == "paused" and self.internal[sub["id"]].get("resumption") == inv["id"]

    def _resumption_attempt_failed(self, ctx, sub, inv, type_):
        """A failed (or authentication-needing) attempt on a paused subscription's resumption invoice."""
        inv["attempted"] = True
        inv["attempt_count"] += 1
        acct = self.owner.get(inv["id"])
        data = self.internal[sub["id"]]
        if data.get("resume_behaviour") == "resume_on_payment_success":
            retries = self.config.get("subscription_retry_days") or (1, 2, 3)
            now = self._cust_now(inv["customer"])
            if type_ == "payment_intent.payment_failed" and inv["attempt_count"] <= len(retries):
                inv["next_payment_attempt"] = now + int(retries[inv["attempt_count"] - 1] * 86400)
            else:
                inv["next_payment_attempt"] = None
        else:
            inv["next_payment_attempt"] = None
        if type_ == "payment_intent.requires_action":
            self._emit("invoice.payment_action_required", inv, ctx, acct)
        else:
            self._emit("invoice.payment_failed", inv, ctx, acct)
        if data.get("resume_behaviour") != "resume_on_payment_success":
            self._sub_resumed(ctx, sub, "past_due")

    def _resumption_due(self, sub):
        """While paused, only a resumption invoice has anything due: its retries and its expiry."""
        inv = self.objects.get(self.internal[sub["id"]].get("resumption") or "")
        if inv is None or inv["status"] != "open":
            return []
        due = []
        if inv["next_payment_attempt"]:
            due.append((inv["next_payment_attempt"], "retry:" + inv["id"]))
        if not inv["attempt_count"]:
            due.append((inv["created"] + RESUMPTION_EXPIRY, "resumption_expire:" + inv["id"]))
        return due

    def _resumption_expire(self, ctx, sub, inv):
        if inv["status"] == "open" and not inv["attempt_count"]:
            self._invoice_void(ctx, inv)
