"""Charges and refunds."""

from ..params import (
    ANY,
    BOOL,
    INT,
    META,
    STR,
    STRLIST,
    ApiError,
    enum,
    invalid,
    validate,
)
from .router import route
from .state import jcopy, not_found, rand


class ChargesMixin:
    @route("GET", "/v1/charges/{cid}")
    def charge_retrieve(self, ctx, q, cid):
        validate(q, {"expand": STRLIST})
        return self._get("charge", "charge", cid, ctx)

    @route("GET", "/v1/charges")
    def charge_list(self, ctx, q):
        pi = self._pop_str(q, "payment_intent")
        cust = self._pop_str(q, "customer")
        tg = self._pop_str(q, "transfer_group")
        if pi:
            return self._list(
                ctx,
                q,
                "charge",
                "/v1/charges",
                index=("payment_intent", pi),
                pred=lambda o: (not cust or o.get("customer") == cust) and (not tg or o.get("transfer_group") == tg),
            )
        if cust:
            return self._list(
                ctx,
                q,
                "charge",
                "/v1/charges",
                index=("customer", cust),
                pred=lambda o: not tg or o.get("transfer_group") == tg,
            )
        return self._list(
            ctx, q, "charge", "/v1/charges", pred=(lambda o: o.get("transfer_group") == tg) if tg else None
        )

    @route("POST", "/v1/charges/{cid}")
    def charge_update(self, ctx, q, cid):
        p = validate(
            q,
            {
                "description": STR,
                "metadata": META,
                "receipt_email": STR,
                "transfer_group": STR,
                "shipping": ANY,
                "fraud_details": ANY,
                "customer": STR,
            },
        )
        ch = self._get("charge", "charge", cid, ctx)
        before = jcopy(ch)
        for f in ("description", "receipt_email", "shipping"):
            if f in p:
                ch[f] = p[f] or None
        if "transfer_group" in p:
            if ch.get("transfer_group") and p["transfer_group"] != ch["transfer_group"]:
                raise invalid("The transfer_group of a charge can only be set once.", param="transfer_group")
            ch["transfer_group"] = p["transfer_group"] or None
        if p.get("customer"):
            self._get("customer", "customer", p["customer"], ctx, "customer", 400)
            ch["customer"] = p["customer"]
        if isinstance(p.get("fraud_details"), dict):
            ch["fraud_details"] = dict(p["fraud_details"])
        self._apply_metadata(ch, p.get("metadata"))
        prev = self._diff(before, ch)
        if prev:
            self._emit("charge.updated", ch, ctx, self.owner.get(cid), prev)
        return ch

    @route("POST", "/v1/charges/{cid}/capture")
    def charge_capture(self, ctx, q, cid):
        """The older capture of an uncaptured charge: the same as capturing its PaymentIntent."""
        p = validate(
            q,
            {
                "amount": INT,
                "application_fee_amount": INT,
                "receipt_email": STR,
                "statement_descriptor": STR,
                "statement_descriptor_suffix": STR,
                "transfer_data": ANY,
                "transfer_group": STR,
                "metadata": META,
            },
        )
        ch = self._get("charge", "charge", cid, ctx)
        pi = self.objects.get(ch.get("payment_intent") or "")
        if ch["captured"] or pi is None or pi["status"] != "requires_capture" or pi.get("latest_charge") != cid:
            raise invalid(
                "Charge %s has already been captured or cannot be captured." % cid, code="charge_already_captured"
            )
        forwarded = {
            k: p[k] for k in ("application_fee_amount", "statement_descriptor", "statement_descriptor_suffix") if k in p
        }
        if "amount" in p:
            forwarded["amount_to_capture"] = p["amount"]
        forwarded = {k: str(v) for k, v in forwarded.items()}  # pi_capture validates form values
        if p.get("receipt_email"):
            ch["receipt_email"] = p["receipt_email"]
        self.pi_capture(ctx, forwarded, pi["id"])
        self._apply_metadata(ch, p.get("metadata"))
        return ch

    def _unrefunded(self, ch):
        """Captured and not refunded. amount_refunded also counts what a partial capture released."""
        released = self.internal.get(ch["id"], {}).get("released", 0)
        return ch["amount_captured"] - (ch["amount_refunded"] - released)

    @route("GET", "/v1/charges/{cid}/refunds")
    def charge_refunds(self, ctx, q, cid):
        self._get("charge", "charge", cid, ctx)
        return self._list(ctx, q, "refund", "/v1/charges/%s/refunds" % cid, index=("charge", cid))

    # ============================================================== refunds
    @route("POST", "/v1/refunds")
    def refund_create(self, ctx, q):
        p = validate(
            q,
            {
                "payment_intent": STR,
                "charge": STR,
                "amount": INT,
                "reason": enum("duplicate", "fraudulent", "requested_by_customer"),
                "metadata": META,
                "reverse_transfer": BOOL,
                "refund_application_fee": BOOL,
                "instructions_email": STR,
                "origin": STR,
                "customer": STR,
                "currency": STR,
            },
        )
        if not p.get("payment_intent") and not p.get("charge"):
            raise ApiError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
                param="payment_intent",
            )
        if p.get("payment_intent"):
            pi = self._get("payment_intent", "payment_intent", p["payment_intent"], ctx, "payment_intent", 400)
            if p.get("charge") and p["charge"] != pi.get("latest_charge"):
                raise invalid("The charge does not belong to this PaymentIntent.", param="charge")
            if pi["status"] != "succeeded" or not pi.get("latest_charge"):
                raise invalid(
                    "This PaymentIntent does not have a successful charge to refund.",
                    param="payment_intent",
                    code="charge_not_refundable",
                )
            ch = self.objects[pi["latest_charge"]]
        else:
            ch = self._get("charge", "charge", p["charge"], ctx, "charge", 400)
            pi = self.objects.get(ch.get("payment_intent") or "")
        if ch["captured"]:
            self._settle_capture_now(ch)
        if ch["status"] != "succeeded" or not ch["captured"]:
            raise invalid(
                "Charge %s has not been captured or did not succeed, so it cannot be refunded." % ch["id"],
                param="charge",
                code="charge_not_refundable",
            )
        if ch["disputed"] and not any(
            self.objects[d]["is_charge_refundable"] for d in self.idx.get(("dispute", "charge", ch["id"]), ())
        ):  # an inquiry leaves the charge refundable; a chargeback does not
            raise invalid("Charge %s has been charged back; cannot issue a refund." % ch["id"], code="charge_disputed")
        remaining = self._unrefunded(ch)
        if remaining <= 0:
            raise invalid("Charge %s has already been refunded." % ch["id"], code="charge_already_refunded")
        amount = p.get("amount", remaining)
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise invalid(
                "Refund amount ($%d.%02d) is greater than unrefunded amount on charge ($%d.%02d)"
                % (amount // 100, amount % 100, remaining // 100, remaining % 100),
                param="amount",
                code="amount_too_large",
            )
        acct = self.owner.get(ch["id"])
        now = self._now()
        rid = "re_" + rand()
        txn = self._txn(
            acct,
            -amount,
            ch["currency"],
            "refund",
            rid,
            description="REFUND FOR CHARGE (%s)" % (ch.get("description") or "Payment"),
        )
        r = {
            "id": rid,
            "object": "refund",
            "amount": amount,
            "balance_transaction": txn["id"],
            "charge": ch["id"],
            "created": now,
            "currency": ch["currency"],
            "destination_details": {
                "card": {
                    "reference": rand(10),
                    "reference_status": "available",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": {},
            "payment_intent": ch.get("payment_intent"),
            "reason": p.get("reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
            "customer": ch.get("customer"),
            "customer_account": None,
            "payment_method": ch.get("payment_method"),
        }
        self._apply_metadata(r, p.get("metadata"))
        self._store("refund", r, acct, index=("charge", "payment_intent"))
        before = jcopy(self._out(ch))
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        if p.get("reverse_transfer") and ch.get("transfer"):
            tr = self.objects.get(ch["transfer"])
            if tr:
                rev_amount = min(
                    tr["amount"] - tr["amount_reversed"],
                    int(round(tr["amount"] * amount / float(ch["amount_captured"]))),
                )
                if rev_amount > 0:
                    rev = self._reverse(ctx, tr, rev_amount, {}, None, check_balance=False)
                    rev["source_refund"] = rid
                    r["transfer_reversal"] = rev["id"]
        self._emit("refund.created", r, ctx, acct)
        after = self._out(ch)
        self._emit("charge.refunded", ch, ctx, acct, self._diff(before, after))
        del pi
        return r

    REFUND_FAILURES = ("expired_or_canceled_card", "lost_or_stolen_card", "declined", "unknown")

    def fail_refund(self, rid, reason="expired_or_canceled_card"):
        """Test helper: a succeeded refund fails later, as card refunds sometimes do."""
        r = self.objects.get(rid)
        if r is None or r.get("object") != "refund":
            raise not_found("refund", rid)
        if r["status"] not in ("succeeded", "pending"):
            raise invalid("Refund %s has status %s; only a succeeded or pending refund can fail." % (rid, r["status"]))
        if reason not in self.REFUND_FAILURES:
            raise invalid("failure_reason must be one of %s" % ", ".join(self.REFUND_FAILURES), param="failure_reason")
        acct = self.owner.get(rid)
        ch = self.objects[r["charge"]]
        txn = self._txn(
            acct,
            r["amount"],
            r["currency"],
            "refund_failure",
            rid,
            description="REFUND FAILURE",
            reporting_category="refund_failure",
        )
        before = jcopy(r)
        r["status"] = "failed"
        r["failure_reason"] = reason
        r["failure_balance_transaction"] = txn["id"]
        prev = self._diff(before, r)
        ch_before = jcopy(ch)
        ch["amount_refunded"] -= r["amount"]
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"] and ch["amount_captured"] > 0
        self._emit("refund.updated", r, None, acct, prev)
        self._emit("charge.refund.updated", r, None, acct, prev)
        self._emit("refund.failed", r, None, acct)
        self._emit("charge.updated", ch, None, acct, self._diff(ch_before, ch))
        return r

    @route("GET", "/v1/refunds/{rid}")
    def refund_retrieve(self, ctx, q, rid):
        validate(q, {"expand": STRLIST})
        return self._get("refund", "refund", rid, ctx)

    @route("POST", "/v1/refunds/{rid}")
    def refund_update(self, ctx, q, rid):
        p = validate(q, {"metadata": META})
        r = self._get("refund", "refund", rid, ctx)
        before = jcopy(r)
        self._apply_metadata(r, p.get("metadata"))
        prev = self._diff(before, r)
        if prev:
            acct = self.owner.get(rid)
            self._emit("refund.updated", r, ctx, acct, prev)
            self._emit("charge.refund.updated", r, ctx, acct, prev)
        return r

    @route("POST", "/v1/refunds/{rid}/cancel")
    def refund_cancel(self, ctx, q, rid):
        """Only a refund waiting for the customer's action can be canceled; card refunds never wait."""
        validate(q, {})
        r = self._get("refund", "refund", rid, ctx)
        if r["status"] != "requires_action":
            raise invalid(
                "Refund %s cannot be canceled because it has a status of %s. Only refunds with a status of "
                "requires_action can be canceled." % (rid, r["status"])
            )
        return r

    @route("GET", "/v1/refunds")
    def refund_list(self, ctx, q):
        ch = self._pop_str(q, "charge")
        pi = self._pop_str(q, "payment_intent")
        if ch:
            return self._list(
                ctx,
                q,
                "refund",
                "/v1/refunds",
                index=("charge", ch),
                pred=lambda o: not pi or o.get("payment_intent") == pi,
            )
        if pi:
            return self._list(ctx, q, "refund", "/v1/refunds", index=("payment_intent", pi))
        return self._list(ctx, q, "refund", "/v1/refunds")
