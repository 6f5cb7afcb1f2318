"""Transfers, their reversals, and payouts."""

from ..params import (
    BOOL,
    INT,
    META,
    STR,
    STRLIST,
    TSFILTER,
    ApiError,
    enum,
    invalid,
    require,
    validate,
)
from .router import route
from .state import jcopy, not_found, rand


class TransfersMixin:
    def _make_transfer(self, ctx, amount, currency, dest, group, source_tx, metadata, description, available_on=None):
        """`available_on` set: the transfer is funded by a charge whose funds are still pending (a
        `source_transaction`, or a destination charge), so both sides stay pending until that charge's
        funds are available, as on Stripe. Otherwise it is taken from the available balance."""
        tid = "tr_" + rand()
        now = self._now()
        held = available_on is not None
        txn = self._txn(
            None, -amount, currency, "transfer", tid, description=description, pending=held, available_on=available_on
        )
        py = "py_" + rand()
        py_txn = self._txn(
            dest, amount, currency, "payment", py, description=description, pending=held, available_on=available_on
        )
        tr = {
            "id": tid,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": txn["id"],
            "created": now,
            "currency": currency,
            "description": description,
            "destination": dest,
            "destination_payment": py,
            "livemode": False,
            "metadata": dict(metadata or {}),
            "reversed": False,
            "source_transaction": source_tx,
            "source_type": "card",
            "transfer_group": group,
        }
        self._store("transfer", tr, None, index=("destination", "transfer_group", "source_transaction"))
        self._store_destination_payment(py, tr, py_txn["id"])
        self._emit("transfer.created", tr, ctx, None)
        return tr

    def _store_destination_payment(self, py, tr, txn_id):
        """The transfer's arrival on the connected account: a charge `py_` of that account (what Stripe's
        transfer.destination_payment names), retrievable with its Stripe-Account and expandable."""
        now = tr["created"]
        payment = {
            "id": py,
            "object": "charge",
            "amount": tr["amount"],
            "amount_captured": tr["amount"],
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": txn_id,
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": None,
                "name": None,
                "phone": None,
                "tax_id": None,
            },
            "calculated_statement_descriptor": None,
            "captured": True,
            "created": now,
            "currency": tr["currency"],
            "customer": None,
            "description": tr.get("description"),
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "fraud_details": {},
            "livemode": False,
            "metadata": {},
            "on_behalf_of": None,
            "outcome": None,
            "paid": True,
            "payment_intent": None,
            "payment_method": None,
            "payment_method_details": {"stripe_account": {}, "type": "stripe_account"},
            "receipt_email": None,
            "receipt_number": None,
            "receipt_url": None,
            "refunded": False,
            "review": None,
            "shipping": None,
            "source_transfer": tr["id"],
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "succeeded",
            "transfer_data": None,
            "transfer_group": tr.get("transfer_group"),
            "source": None,
        }
        self._store("charge", payment, tr["destination"])
        self.internal[py] = {"transferred": 0}

    @route("POST", "/v1/transfers")
    def transfer_create(self, ctx, q):
        p = validate(
            q,
            {
                "amount": INT,
                "currency": STR,
                "destination": STR,
                "transfer_group": STR,
                "source_transaction": STR,
                "metadata": META,
                "description": STR,
                "source_type": enum("bank_account", "card", "fpx"),
            },
        )
        if ctx.account:
            raise invalid("Transfers can only be created by the platform.")
        require(p, "amount", "currency", "destination")
        currency = self._check_currency(p["currency"])
        amount = p["amount"]
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        dest = self.objects.get(p["destination"])
        if dest is None or dest.get("object") != "account" or dest.get("deleted"):
            raise not_found("destination", p["destination"], "destination", 400)
        if dest["capabilities"].get("transfers") != "active":
            # Stripe's answer for a destination whose transfers capability is pending, inactive or not
            # requested (test mode included): 400 invalid_request_error, this code and message, no param.
            raise invalid(
                "Your destination account needs to have at least one of the following capabilities "
                "enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
            )
        held_until = None
        if p.get("source_transaction"):
            # Stripe: a transfer tied to a charge draws on that charge's funds, even while they are
            # pending (then the transfer's funds are pending on both sides until the charge's become
            # available), up to what the charge has left: captured, less refunded, less transferred.
            ch = self.objects.get(p["source_transaction"])
            if ch is None or ch.get("object") != "charge" or self.owner.get(ch["id"]) is not None:
                raise not_found("charge", p["source_transaction"], "source_transaction", 400)
            if ch["status"] != "succeeded" or not ch["captured"]:
                raise invalid("The source_transaction charge has not succeeded.", param="source_transaction")
            self._settle_capture_now(ch)
            if ch["currency"] != currency:
                raise invalid(
                    "The currency of source_transaction's balance transaction (%s) must be the same as "
                    "the transfer currency (%s)" % (ch["currency"], currency),
                    param="currency",
                )
            used = self.internal[ch["id"]]["transferred"]
            avail = self._unrefunded(ch) - used
            if amount > avail:
                raise ApiError(
                    400,
                    "Transfer amount exceeds the available amount of source_transaction (%d)." % avail,
                    param="amount",
                    code="balance_insufficient",
                )
            self.internal[ch["id"]]["transferred"] = used + amount
            held_until = self._funds_pending_until(ch)
        else:
            # Without source_transaction only the available balance can be transferred.
            if self._bal(None, currency)["available"] < amount:
                raise ApiError(
                    400,
                    "You have insufficient available funds in your Stripe account. Try adding "
                    "funds directly to your available balance by creating Charges using the "
                    "4000000000000077 test card. See: https://stripe.com/docs/testing#available-balance",
                    code="balance_insufficient",
                )
        md = p.get("metadata") if isinstance(p.get("metadata"), dict) else {}
        return self._make_transfer(
            ctx,
            amount,
            currency,
            dest["id"],
            p.get("transfer_group") or None,
            p.get("source_transaction") or None,
            {k: v for k, v in md.items() if v != ""},
            p.get("description") or None,
            available_on=held_until,
        )

    @route("GET", "/v1/transfers/{tid}")
    def transfer_retrieve(self, ctx, q, tid):
        validate(q, {"expand": STRLIST})
        return self._get("transfer", "transfer", tid, ctx)

    @route("POST", "/v1/transfers/{tid}")
    def transfer_update(self, ctx, q, tid):
        p = validate(q, {"metadata": META, "description": STR})
        tr = self._get("transfer", "transfer", tid, ctx)
        before = jcopy(tr)
        if "description" in p:
            tr["description"] = p["description"] or None
        self._apply_metadata(tr, p.get("metadata"))
        prev = self._diff(before, tr)
        if prev:
            self._emit("transfer.updated", tr, ctx, None, prev)
        return tr

    @route("GET", "/v1/transfers")
    def transfer_list(self, ctx, q):
        dest = self._pop_str(q, "destination")
        tg = self._pop_str(q, "transfer_group")
        if tg:
            return self._list(
                ctx,
                q,
                "transfer",
                "/v1/transfers",
                index=("transfer_group", tg),
                pred=lambda o: not dest or o["destination"] == dest,
            )
        if dest:
            return self._list(ctx, q, "transfer", "/v1/transfers", index=("destination", dest))
        return self._list(ctx, q, "transfer", "/v1/transfers")

    def _reverse(self, ctx, tr, amount, metadata, description, check_balance=True):
        dest = tr["destination"]
        # While the transfer's own funds are still pending on the connected account (a transfer tied to
        # a pending charge), the reversal takes them back from there, pending until the same date.
        paid = [self.objects[t] for t in self.idx.get(("balance_transaction", "source", tr["destination_payment"]), [])]
        held_until = paid[0]["available_on"] if paid and paid[0]["status"] == "pending" else None
        if held_until is not None:
            check_balance = False
        if check_balance and self._bal(dest, tr["currency"])["available"] < amount:
            raise ApiError(
                400,
                "Insufficient funds in the connected account to reverse this transfer "
                "(the connected account's available balance cannot cover %d %s)." % (amount, tr["currency"]),
                code="balance_insufficient",
            )
        rid = "trr_" + rand()
        pyr = "pyr_" + rand()
        self._txn(
            dest,
            -amount,
            tr["currency"],
            "payment_refund",
            pyr,
            description=description,
            reporting_category="transfer_reversal",
            pending=held_until is not None,
            available_on=held_until,
        )
        txn = self._txn(
            None,
            amount,
            tr["currency"],
            "transfer_refund",
            rid,
            description=description,
            reporting_category="transfer_reversal",
            pending=held_until is not None,
            available_on=held_until,
        )
        rev = {
            "id": rid,
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": txn["id"],
            "created": self._now(),
            "currency": tr["currency"],
            "destination_payment_refund": pyr,
            "metadata": dict(metadata or {}),
            "source_refund": None,
            "transfer": tr["id"],
        }
        self._store("transfer_reversal", rev, None, index=("transfer",))
        before = jcopy(tr)
        tr["amount_reversed"] += amount
        tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
        prev = self._diff(before, tr)
        self._emit("transfer.reversed", tr, ctx, None, prev)
        return rev

    @route("POST", "/v1/transfers/{tid}/reversals")
    def reversal_create(self, ctx, q, tid):
        p = validate(q, {"amount": INT, "metadata": META, "description": STR, "refund_application_fee": BOOL})
        tr = self._get("transfer", "transfer", tid, ctx)
        remaining = tr["amount"] - tr["amount_reversed"]
        if remaining <= 0:
            raise invalid("Transfer %s has already been fully reversed." % tid, code="transfer_already_reversed")
        amount = p.get("amount", remaining)
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        if amount > remaining:
            raise invalid(
                "Reversal amount (%d) exceeds the amount remaining on the transfer (%d)." % (amount, remaining),
                param="amount",
                code="amount_too_large",
            )
        md = p.get("metadata") if isinstance(p.get("metadata"), dict) else {}
        return self._reverse(ctx, tr, amount, {k: v for k, v in md.items() if v != ""}, p.get("description"))

    @route("GET", "/v1/transfers/{tid}/reversals")
    def reversal_list(self, ctx, q, tid):
        self._get("transfer", "transfer", tid, ctx)
        return self._list(ctx, q, "transfer_reversal", "/v1/transfers/%s/reversals" % tid, index=("transfer", tid))

    @route("GET", "/v1/transfers/{tid}/reversals/{rid}")
    def reversal_retrieve(self, ctx, q, tid, rid):
        validate(q, {"expand": STRLIST})
        self._get("transfer", "transfer", tid, ctx)
        r = self._get("transfer_reversal", "transfer_reversal", rid, ctx)
        if r["transfer"] != tid:
            raise not_found("transfer_reversal", rid)
        return r

    @route("POST", "/v1/transfers/{tid}/reversals/{rid}")
    def reversal_update(self, ctx, q, tid, rid):
        p = validate(q, {"metadata": META})
        r = self.reversal_retrieve(ctx, {}, tid, rid)
        self._apply_metadata(r, p.get("metadata"))
        return r

    # ============================================================== payouts
    @route("POST", "/v1/payouts")
    def payout_create(self, ctx, q):
        p = validate(
            q,
            {
                "amount": INT,
                "currency": STR,
                "description": STR,
                "metadata": META,
                "statement_descriptor": STR,
                "method": enum("standard", "instant"),
                "destination": STR,
                "source_type": enum("bank_account", "card", "fpx"),
                "payout_method": STR,
            },
        )
        require(p, "amount", "currency")
        currency = self._check_currency(p["currency"])
        amount = p["amount"]
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param="amount"
            )
        acct = ctx.account
        if acct:
            a = self.objects[acct]
            if not a["payouts_enabled"]:
                raise invalid(
                    "Payouts are not enabled for this account; its requirements are past due.",
                    code="payouts_not_allowed",
                )
            dest = self.internal.get(acct, {}).get("bank")
        else:
            dest = "ba_platform"
        if p.get("destination"):
            dest = p["destination"]
        if self._bal(acct, currency)["available"] < amount:
            raise ApiError(
                400,
                "You have insufficient funds in your Stripe account for this transfer. Your card "
                "balance is too low. You can use the /v1/balance endpoint to view your Stripe "
                "balance (for more details, see stripe.com/docs/api#balance).",
                code="balance_insufficient",
            )
        pid = "po_" + rand()
        now = self._now()
        txn = self._txn(acct, -amount, currency, "payout", pid, description=p.get("description") or "STRIPE PAYOUT")
        po = {
            "id": pid,
            "object": "payout",
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": now + 86400 * (0 if p.get("method") == "instant" else 2),
            "automatic": False,
            "balance_transaction": txn["id"],
            "created": now,
            "currency": currency,
            "description": p.get("description") or None,
            "destination": dest,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "method": p.get("method") or "standard",
            "original_payout": None,
            "reconciliation_status": "not_applicable",
            "reversed_by": None,
            "source_type": p.get("source_type") or "card",
            "statement_descriptor": p.get("statement_descriptor") or None,
            "status": "pending",
            "type": "bank_account",
            "trace_id": {"status": "pending", "value": None},
            "payout_method": None,
        }
        self._apply_metadata(po, p.get("metadata"))
        self._store("payout", po, acct)
        self.internal[pid] = {"txns": [txn["id"]]}
        fail = None
        for i, f in enumerate(self.payout_fail_next):
            if f.get("account") in (None, acct):
                fail = f.get("failure_code") or "account_closed"
                f["count"] -= 1
                if f["count"] <= 0:
                    self.payout_fail_next.pop(i)
                break
        if fail is None and acct in self.payout_fail_accounts:
            fail = self.payout_fail_accounts[acct]
        self.internal[pid]["fail"] = fail
        self._emit("payout.created", po, ctx, acct)
        self.scheduler.schedule(self.config["payout_delay"] * self.config["time_scale"], self._finish_payout, pid)
        return po

    FAILURE_MESSAGES = {
        "account_closed": "The bank account has been closed.",
        "account_frozen": "The bank account has been frozen.",
        "no_account": "The bank account details on file are probably incorrect. No bank account could be located "
        "with those details.",
        "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
        "invalid_account_number": "The routing number seems correct, but the account number is invalid.",
        "could_not_process": "The bank could not process this payout.",
    }

    def _finish_payout(self, pid):
        with self.lock:
            self.finish_payout(pid)

    def finish_payout(self, pid, force_fail=None):
        po = self.objects.get(pid)
        if po is None or po["status"] not in ("pending", "in_transit"):
            return po
        acct = self.owner.get(pid)
        fail = force_fail or self.internal.get(pid, {}).get("fail")
        before = jcopy(po)
        if fail:
            txn = self._txn(
                acct,
                po["amount"],
                po["currency"],
                "payout_failure",
                pid,
                description="Payout failure (%s)" % fail,
                reporting_category="payout_reversal",
            )
            self.internal[pid]["txns"].append(txn["id"])
            po["status"] = "failed"
            po["failure_code"] = fail
            po["failure_message"] = self.FAILURE_MESSAGES.get(fail, "The payout failed.")
            po["failure_balance_transaction"] = txn["id"]
            po["trace_id"] = {"status": "unsupported", "value": None}
            self._emit("payout.updated", po, None, acct, self._diff(before, po))
            self._emit("payout.failed", po, None, acct)
        else:
            po["status"] = "paid"
            po["reconciliation_status"] = "completed"
            po["trace_id"] = {"status": "supported", "value": "TRACE" + rand(10).upper()}
            self._emit("payout.updated", po, None, acct, self._diff(before, po))
            self._emit("payout.paid", po, None, acct)
        return po

    @route("GET", "/v1/payouts/{pid}")
    def payout_retrieve(self, ctx, q, pid):
        validate(q, {"expand": STRLIST})
        return self._get("payout", "payout", pid, ctx)

    @route("POST", "/v1/payouts/{pid}")
    def payout_update(self, ctx, q, pid):
        p = validate(q, {"metadata": META})
        po = self._get("payout", "payout", pid, ctx)
        before = jcopy(po)
        self._apply_metadata(po, p.get("metadata"))
        prev = self._diff(before, po)
        if prev:
            self._emit("payout.updated", po, ctx, ctx.account, prev)
        return po

    @route("POST", "/v1/payouts/{pid}/cancel")
    def payout_cancel(self, ctx, q, pid):
        validate(q, {})
        po = self._get("payout", "payout", pid, ctx)
        if po["status"] != "pending":
            raise invalid("Payouts can only be canceled while they are pending (status: %s)." % po["status"])
        txn = self._txn(
            ctx.account, po["amount"], po["currency"], "payout_cancel", pid, description="Payout cancellation"
        )
        self.internal[pid]["txns"].append(txn["id"])
        before = jcopy(po)
        po["status"] = "canceled"
        self._emit("payout.canceled", po, ctx, ctx.account)
        self._emit("payout.updated", po, ctx, ctx.account, self._diff(before, po))
        return po

    @route("GET", "/v1/payouts")
    def payout_list(self, ctx, q):
        st = self._pop_str(q, "status")
        dest = self._pop_str(q, "destination")
        arrival = (
            validate({"arrival_date": q.pop("arrival_date")}, {"arrival_date": TSFILTER})["arrival_date"]
            if "arrival_date" in q
            else {}
        )

        def arrives(o):
            at = o["arrival_date"]
            return all(
                {"eq": at == bound, "gt": at > bound, "gte": at >= bound, "lt": at < bound, "lte": at <= bound}[op]
                for op, bound in arrival.items()
            )

        return self._list(
            ctx,
            q,
            "payout",
            "/v1/payouts",
            pred=lambda o: (not st or o["status"] == st) and (not dest or o["destination"] == dest) and arrives(o),
        )
