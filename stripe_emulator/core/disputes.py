"""Disputes."""

from ..params import (
    ANY,
    BOOL,
    META,
    STRLIST,
    ApiError,
    invalid,
    validate,
)
from .router import route
from .state import jcopy, not_found, rand
from .tables import EVIDENCE_FIELDS

# Stripe's test mode decides a dispute by the evidence's uncategorized_text.
WINNING_EVIDENCE = "winning_evidence"
LOSING_EVIDENCE = "losing_evidence"


class DisputesMixin:
    def open_dispute(self, ch_id, reason="fraudulent", amount=None, inquiry=False):
        """A chargeback (funds withdrawn with the dispute fee) or, with inquiry=True, an inquiry
        (warning_needs_response: nothing withdrawn, the charge still refundable)."""
        ch = self.objects.get(ch_id)
        if ch is None or ch.get("object") != "charge":
            raise not_found("charge", ch_id)
        if ch["status"] != "succeeded" or not ch["captured"]:
            raise invalid("Charge %s has not been captured, it cannot be disputed." % ch_id)
        if ch["disputed"]:
            raise invalid("Charge %s is already disputed." % ch_id, code="charge_disputed")
        self._settle_capture_now(ch)
        self._settle_capture_now(ch)
        acct = self.owner.get(ch_id)
        amount = amount or ch["amount_captured"]
        now = self._now()
        did = "dp_" + rand()
        d = self._dispute_obj(did, ch, amount, reason, now, inquiry)
        self._store("dispute", d, acct, index=("charge", "payment_intent"))
        before = jcopy(ch)
        ch["disputed"] = True
        if not inquiry:
            self._withdraw(d)
        self._emit("charge.dispute.created", d, None, acct)
        if not inquiry:
            self._emit("charge.dispute.funds_withdrawn", d, None, acct)
        self._emit("charge.updated", ch, None, acct, self._diff(before, ch))
        return d

    def _withdraw(self, d):
        """The chargeback takes the disputed amount and the dispute fee."""
        txn = self._txn(
            self.owner.get(d["id"]),
            -d["amount"],
            d["currency"],
            "adjustment",
            d["id"],
            fee=1500,
            description="Chargeback withdrawal for %s" % d["charge"],
            reporting_category="dispute",
            fee_desc="Dispute fee",
        )
        d["balance_transactions"].append(jcopy(txn))

    def _dispute_obj(self, did, ch, amount, reason, now, inquiry):
        return {
            "id": did,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [],
            "charge": ch["id"],
            "created": now,
            "currency": ch["currency"],
            "evidence": dict({f: None for f in EVIDENCE_FIELDS}, enhanced_evidence={}),
            "evidence_details": {
                "due_by": now + 7 * 86400,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
                "submission_method": "not_submitted",
                "enhanced_eligibility": {},
            },
            "is_charge_refundable": inquiry,
            "livemode": False,
            "metadata": {},
            "payment_intent": ch.get("payment_intent"),
            "payment_method_details": {
                "card": {
                    "brand": ch["payment_method_details"]["card"]["brand"],
                    "case_type": "inquiry" if inquiry else "chargeback",
                    "network": ch["payment_method_details"]["card"]["network"],
                    "network_reason_code": "10.4",
                },
                "type": "card",
            },
            "reason": reason or "general",
            "status": "warning_needs_response" if inquiry else "needs_response",
            "enhanced_eligibility_types": [],
            "intended_submission_method": None,
        }

    @staticmethod
    def _is_inquiry(d):
        return d["status"].startswith("warning_")

    def close_dispute(self, did, outcome, ctx=None):
        d = self.objects.get(did)
        if d is None or d.get("object") != "dispute":
            raise not_found("dispute", did)
        if d["status"] in ("won", "lost", "warning_closed"):
            raise invalid("This dispute is already closed.", code="dispute_already_closed")
        acct = self.owner.get(did)
        before = jcopy(d)
        if self._is_inquiry(d):
            if outcome == "won":  # the inquiry ends without a chargeback
                d["status"] = "warning_closed"
                d["is_charge_refundable"] = False
                self._emit("charge.dispute.closed", d, ctx, acct, self._diff(before, d))
                return d
            # lost: the inquiry escalates into a chargeback that still needs a response
            d["status"] = "needs_response"
            d["is_charge_refundable"] = False
            d["payment_method_details"]["card"]["case_type"] = "chargeback"
            d["evidence_details"]["due_by"] = self._now() + 7 * 86400
            self._withdraw(d)
            self._emit("charge.dispute.updated", d, ctx, acct, self._diff(before, d))
            self._emit("charge.dispute.funds_withdrawn", d, ctx, acct)
            return d
        if outcome == "won":
            txn = self._txn(
                acct,
                d["amount"] + 1500,
                d["currency"],
                "adjustment",
                did,
                description="Chargeback reversal for %s" % d["charge"],
                reporting_category="dispute_reversal",
            )
            d["balance_transactions"].append(jcopy(txn))
            d["status"] = "won"
            self._emit("charge.dispute.funds_reinstated", d, ctx, acct)
        else:
            d["status"] = "lost"
        d["is_charge_refundable"] = False
        self._emit("charge.dispute.closed", d, ctx, acct, self._diff(before, d))
        return d

    @route("GET", "/v1/disputes/{did}")
    def dispute_retrieve(self, ctx, q, did):
        validate(q, {"expand": STRLIST})
        return self._get("dispute", "dispute", did, ctx)

    @route("GET", "/v1/disputes")
    def dispute_list(self, ctx, q):
        ch = self._pop_str(q, "charge")
        pi = self._pop_str(q, "payment_intent")
        if ch:
            return self._list(ctx, q, "dispute", "/v1/disputes", index=("charge", ch))
        if pi:
            return self._list(ctx, q, "dispute", "/v1/disputes", index=("payment_intent", pi))
        return self._list(ctx, q, "dispute", "/v1/disputes")

    @route("POST", "/v1/disputes/{did}")
    def dispute_update(self, ctx, q, did):
        p = validate(q, {"evidence": ANY, "metadata": META, "submit": BOOL})
        d = self._get("dispute", "dispute", did, ctx)
        if d["status"] in ("won", "lost", "warning_closed"):
            raise invalid("This dispute is already closed; evidence can no longer be submitted.")
        before = jcopy(d)
        ev = p.get("evidence")
        if ev is not None:
            if not isinstance(ev, dict):
                raise invalid("Invalid object", param="evidence")
            for k, v in ev.items():
                if k not in d["evidence"]:
                    raise ApiError(
                        400,
                        "Received unknown parameter: evidence[%s]" % k,
                        code="parameter_unknown",
                        param="evidence[%s]" % k,
                    )
                d["evidence"][k] = v or None if isinstance(v, str) else v
            d["evidence_details"]["has_evidence"] = True
        self._apply_metadata(d, p.get("metadata"))
        submitted = p.get("submit", True) and ev is not None
        if submitted:
            d["status"] = "warning_under_review" if self._is_inquiry(d) else "under_review"
            d["evidence_details"]["submission_count"] += 1
            d["evidence_details"]["submission_method"] = "manual"
        prev = self._diff(before, d)
        if prev:
            self._emit("charge.dispute.updated", d, ctx, self.owner.get(did), prev)
        text = str(d["evidence"].get("uncategorized_text") or "")
        if submitted and (WINNING_EVIDENCE in text or LOSING_EVIDENCE in text):
            outcome = "won" if WINNING_EVIDENCE in text else "lost"
            self.scheduler.schedule(
                self.config["dispute_delay"] * self.config["time_scale"], self._decide_dispute, did, outcome
            )
        return d

    def _decide_dispute(self, did, outcome):
        """Test mode's verdict on submitted evidence (winning_evidence / losing_evidence)."""
        with self.lock:
            d = self.objects.get(did)
            if d is not None and d["status"] in ("under_review", "warning_under_review"):
                self.close_dispute(did, outcome)

    @route("POST", "/v1/disputes/{did}/close")
    def dispute_close(self, ctx, q, did):
        validate(q, {})
        d = self._get("dispute", "dispute", did, ctx)
        # closing accepts the dispute: a chargeback is lost, an inquiry just ends
        return self.close_dispute(did, "won" if self._is_inquiry(d) else "lost", ctx)
