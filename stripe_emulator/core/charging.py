"""What confirming and capturing a PaymentIntent does: charges, their balance transactions, 3DS."""

from ..params import (
    ApiError,
)
from .state import jcopy, rand, stripe_fee
from .tables import DECLINES


class ChargingMixin:
    def _fail_auth(self, ctx, pi, pm, emit=True):
        pi["status"] = "requires_payment_method"
        pi["next_action"] = None
        pi["payment_method"] = None
        pi["last_payment_error"] = {
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
            "or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
            "payment_method": jcopy(pm),
            "type": "invalid_request_error",
        }
        if emit:
            self._emit("payment_intent.payment_failed", pi, ctx, self.owner.get(pi["id"]))

    def _decline_authentication_required(self, ctx, pi, pm):
        """An off-session payment with a card that needs 3-D Secure: a failed charge, the intent back to
        requires_payment_method, and a 402 authentication_required (Stripe never asks an absent customer)."""
        acct = self.owner.get(pi["id"])
        message = "Your card was declined. This transaction requires authentication."
        outcome = {
            "advice_code": "try_again_later",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": "authentication_required",
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "The bank returned the decline code `authentication_required`.",
            "type": "issuer_declined",
        }
        ch = self._new_charge(ctx, pi, pm, "failed", False, outcome, ("authentication_required", message))
        err = {
            "charge": ch["id"],
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "doc_url": "https://stripe.com/docs/error-codes/authentication-required",
            "message": message,
            "payment_method": jcopy(pm),
            "type": "card_error",
        }
        pi["status"] = "requires_payment_method"
        pi["payment_method"] = None
        pi["next_action"] = None
        pi["last_payment_error"] = err
        self._emit("charge.failed", ch, ctx, acct)
        self._emit("payment_intent.payment_failed", pi, ctx, acct)
        raise ApiError(
            402,
            message,
            type="card_error",
            code="authentication_required",
            decline_code="authentication_required",
            extra={"charge": ch["id"], "payment_intent": jcopy(self._out(pi)), "payment_method": jcopy(pm)},
        )

    def _new_charge(self, ctx, pi, pm, status, captured, outcome, failure=None):
        now = self._now()
        card = pm["card"]
        ch = {
            "id": "ch_" + rand(),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": pi.get("application_fee_amount"),
            "balance_transaction": None,
            "billing_details": jcopy(pm["billing_details"]),
            "calculated_statement_descriptor": (pi.get("statement_descriptor") or "TALKPAY")[:22].upper(),
            "captured": False,
            "created": now,
            "currency": pi["currency"],
            "customer": pi.get("customer"),
            "description": pi.get("description"),
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": failure[0] if failure else None,
            "failure_message": failure[1] if failure else None,
            "fraud_details": {},
            "livemode": False,
            "metadata": dict(pi["metadata"]),
            "on_behalf_of": pi.get("on_behalf_of"),
            "outcome": outcome,
            "paid": status == "succeeded",
            "payment_intent": pi["id"],
            "payment_method": pm["id"],
            "payment_method_details": {
                "card": {
                    "amount_authorized": pi["amount"] if status == "succeeded" else None,
                    "authorization_code": None,
                    "brand": card["brand"],
                    "checks": dict(card["checks"]),
                    "country": card["country"],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                    "extended_authorization": {"status": "disabled"},
                    "fingerprint": card["fingerprint"],
                    "funding": card["funding"],
                    "incremental_authorization": {"status": "unavailable"},
                    "installments": None,
                    "last4": card["last4"],
                    "mandate": None,
                    "multicapture": {"status": "unavailable"},
                    "network": card["brand"],
                    "network_token": {"used": False},
                    "network_transaction_id": None,
                    "electronic_commerce_indicator": None,
                    "regulated_status": None,
                    "transaction_link_id": None,
                    "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                    "three_d_secure": (
                        {
                            "authentication_flow": "challenge",
                            "electronic_commerce_indicator": "05",
                            "exemption_indicator": None,
                            "result": "authenticated",
                            "result_reason": None,
                            "transaction_id": None,
                            "version": "2.2.0",
                        }
                        if self.internal[pi["id"]].get("3ds_ok")
                        else None
                    ),
                    "wallet": None,
                },
                "type": "card",
            },
            "receipt_email": pi.get("receipt_email"),
            "receipt_number": None,
            "receipt_url": "https://pay.stripe.com/receipts/emulator/%s" % rand(16),
            "refunded": False,
            "review": None,
            "shipping": pi.get("shipping"),
            "source_transfer": None,
            "statement_descriptor": pi.get("statement_descriptor"),
            "statement_descriptor_suffix": pi.get("statement_descriptor_suffix"),
            "status": status,
            "transfer_data": (
                dict({"amount": None}, **jcopy(pi["transfer_data"])) if pi.get("transfer_data") else None
            ),
            "transfer_group": pi.get("transfer_group"),
            "source": None,
        }
        if pi.get("transfer_data"):
            ch["transfer"] = None
        self._store("charge", ch, self.owner.get(pi["id"]), index=("payment_intent", "customer"))
        self.internal[ch["id"]] = {"transferred": 0}
        self.internal[pi["id"]]["charges"].append(ch["id"])
        pi["latest_charge"] = ch["id"]
        return ch

    def _attempt_charge(self, ctx, pi, pm, behaviour):
        acct = self.owner.get(pi["id"])
        if behaviour == "decline":
            decline = self.internal[pm["id"]]["decline"]
            code, message = DECLINES.get(decline, ("card_declined", "Your card was declined."))
            outcome = {
                "advice_code": "try_again_later"
                if decline == "processing_error"
                else "do_not_try_again"
                if decline in ("lost_card", "stolen_card", "fraudulent")
                else "try_again_later",
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "declined_by_network",
                "reason": decline,
                "risk_level": "highest" if decline == "fraudulent" else "normal",
                "risk_score": 85 if decline == "fraudulent" else 20,
                "seller_message": "The bank returned the decline code `%s`." % decline,
                "type": "issuer_declined",
            }
            ch = self._new_charge(ctx, pi, pm, "failed", False, outcome, (code, message))
            err = {
                "charge": ch["id"],
                "code": code,
                "decline_code": decline,
                "doc_url": "https://stripe.com/docs/error-codes/%s" % code.replace("_", "-"),
                "message": message,
                "payment_method": jcopy(pm),
                "type": "card_error",
            }
            if code != "card_declined":
                err.pop("decline_code")
                if decline in ("expired_card", "incorrect_cvc"):
                    err["param"] = "exp_month" if decline == "expired_card" else "cvc"
            pi["status"] = "requires_payment_method"
            pi["payment_method"] = None
            pi["last_payment_error"] = err
            self._emit("charge.failed", ch, ctx, acct)
            self._emit("payment_intent.payment_failed", pi, ctx, acct)
            raise ApiError(
                402,
                message,
                type="card_error",
                code=code,
                decline_code=err.get("decline_code"),
                param=err.get("param"),
                extra={"charge": ch["id"], "payment_intent": jcopy(self._out(pi)), "payment_method": jcopy(pm)},
            )
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
        manual = pi["capture_method"] == "manual"
        ch = self._new_charge(ctx, pi, pm, "succeeded", not manual, outcome)
        self.internal[ch["id"]]["behaviour"] = behaviour
        if manual:
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self._emit("charge.succeeded", ch, ctx, acct)
            self._emit("payment_intent.amount_capturable_updated", pi, ctx, acct)
            return
        self._capture_charge(ctx, pi, ch, pi["amount"])
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        self._emit("charge.succeeded", ch, ctx, acct)
        self._emit("payment_intent.succeeded", pi, ctx, acct)
        self._after_capture(ctx, pi, ch)

    def _capture_charge(self, ctx, pi, ch, amount):
        acct = self.owner.get(ch["id"])
        ch["captured"] = True
        ch["amount_captured"] = amount
        behaviour = self.internal[ch["id"]].get("behaviour")
        # Stripe holds card funds in the pending balance until the account's delay has passed; the
        # 4000000000000077 card (pm_card_bypassPending) puts them straight into the available balance.
        pending = self.config["funds_pending"] and behaviour != "success_available"
        txn = self._txn(
            acct,
            amount,
            ch["currency"],
            "charge",
            ch["id"],
            fee=stripe_fee(amount),
            description=ch.get("description"),
            pending=pending,
        )
        # Asynchronous capture: the money has moved, but the charge shows its balance transaction only
        # with a later charge.updated (_capture_settled), as Stripe does.
        self.internal[ch["id"]]["balance_transaction"] = txn["id"]
        fee = pi.get("application_fee_amount")
        if acct and fee:
            # direct charge with an application fee: the platform collects it, available with the charge
            when = txn["available_on"] if txn["status"] == "pending" else None
            self._txn(
                acct,
                -fee,
                ch["currency"],
                "application_fee",
                ch["id"],
                description="Application fee",
                pending=when is not None,
                available_on=when,
            )
            self._txn(
                None,
                fee,
                ch["currency"],
                "application_fee",
                ch["id"],
                description="Application fee",
                pending=when is not None,
                available_on=when,
            )

    def _after_capture(self, ctx, pi, ch):
        self.scheduler.schedule(
            self.config["capture_delay"] * self.config["time_scale"], self._capture_settled_later, pi["id"], ch["id"]
        )
        if self.internal[ch["id"]].get("behaviour") in ("dispute", "inquiry"):
            self.scheduler.schedule(
                self.config["dispute_delay"] * self.config["time_scale"], self._auto_dispute, ch["id"]
            )

    def _settle_capture_now(self, ch):
        """Finish a pending asynchronous capture before something that needs its result (a refund that
        reverses the transfer, a dispute, a transfer drawing on the charge)."""
        if ch.get("payment_intent") and not ch.get("balance_transaction"):
            self._capture_settled(ch["payment_intent"], ch["id"])

    def _capture_settled_later(self, pi_id, ch_id):
        with self.lock:
            self._capture_settled(pi_id, ch_id)

    def _capture_settled(self, pi_id, ch_id):
        """The second half of an asynchronous capture: the charge gets its balance transaction and a
        destination charge its transfer, announced by charge.updated. Runs once."""
        ch, pi = self.objects.get(ch_id), self.objects.get(pi_id)
        state = self.internal.get(ch_id)
        if (
            ch is None
            or pi is None
            or state is None
            or ch.get("balance_transaction")
            or "balance_transaction" not in state
        ):
            return
        before = jcopy(self._out(ch))
        ch["balance_transaction"] = state["balance_transaction"]
        td = pi.get("transfer_data")
        if td:
            amount = td.get("amount")
            if amount is None:
                amount = ch["amount_captured"] - (pi.get("application_fee_amount") or 0)
            if amount > 0:
                tr = self._make_transfer(
                    None,
                    amount,
                    ch["currency"],
                    td["destination"],
                    pi.get("transfer_group"),
                    ch["id"],
                    {},
                    None,
                    available_on=self._funds_pending_until(ch),
                )
                ch["transfer"] = tr["id"]
        self._emit("charge.updated", ch, None, self.owner.get(ch_id), self._diff(before, self._out(ch)))

    def _funds_pending_until(self, ch):
        """`available_on` of the charge's funds while they are pending, else None (also before the
        asynchronous capture has shown the charge its balance transaction)."""
        txn_id = ch.get("balance_transaction") or self.internal.get(ch["id"], {}).get("balance_transaction")
        t = self.objects.get(txn_id or "")
        return t["available_on"] if t and t["status"] == "pending" else None

    def _auto_dispute(self, ch_id):
        with self.lock:
            ch = self.objects.get(ch_id)
            if ch and not ch["disputed"] and ch["status"] == "succeeded":
                inquiry = self.internal[ch_id].get("behaviour") == "inquiry"
                self.open_dispute(ch_id, "fraudulent", inquiry=inquiry)
