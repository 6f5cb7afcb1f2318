"""PaymentIntents: create, update, confirm, cancel, capture."""

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
    obj,
    require,
    validate,
)
from .router import route
from .state import Ctx, jcopy, not_found, rand
from .tables import (
    API_VERSION,
    AUTOMATIC_PAYMENT_METHODS_SINCE,
    CARD_TOKENS,
    CURRENCY_MIN,
    PAYMENT_METHOD_TYPES_REMOVED_IN,
    ZERO_DECIMAL,
)

# Stripe's answer to a server-side confirmation of an intent that may redirect, without a return_url.
RETURN_URL_REQUIRED = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically accept "
    "the payment methods enabled in the Dashboard, some of which may require a full page redirect to "
    "succeed. If you do not want to accept redirect-based payment methods, set "
    "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to "
    "`never` when creating Setup Intents and Payment Intents."
)
STATEMENT_DESCRIPTOR_ON_CARD = (
    "The statement_descriptor parameter is not supported for the payment_method_type `card`. To continue "
    "supporting payment_method_type `card`, please pass in `statement_descriptor_suffix` or remove the "
    "`statement_descriptor` parameter altogether. Please see https://support.stripe.com/questions/"
    "use-of-the-statement-descriptor-parameter-on-paymentintents-for-card-charges for additional details."
)
# Card statement descriptors (prefix, "* ", suffix) are at most 22 characters.
DESCRIPTOR_MAX = 22
# Payment method types the emulator can take; allowed_payment_method_types is filtered to these.
SUPPORTED_TYPES = ("card",)


def _version_date(ctx):
    """The date part of the API version this request follows (its Stripe-Version, else the emulator's)."""
    return ((ctx.api_version if ctx is not None else None) or API_VERSION).split(".", 1)[0]


def _off_session(value):
    return str(value).lower() in ("true", "one_off", "recurring")


class PaymentIntentsMixin:
    PI_COMMON = {
        "amount": INT,
        "currency": STR,
        "customer": STR,
        "description": STR,
        "metadata": META,
        "payment_method": STR,
        "payment_method_types": STRLIST,
        "receipt_email": STR,
        "setup_future_usage": enum("off_session", "on_session", None),
        "shipping": ANY,
        "statement_descriptor": STR,
        "statement_descriptor_suffix": STR,
        "transfer_group": STR,
        "application_fee_amount": INT,
        "capture_method": enum("automatic", "automatic_async", "manual"),
        "payment_method_options": ANY,
        "payment_method_data": ANY,
        "payment_method_configuration": STR,
        "excluded_payment_method_types": STRLIST,
        "allowed_payment_method_types": STRLIST,
    }
    PI_CREATE = dict(
        PI_COMMON,
        confirm=BOOL,
        confirmation_method=enum("automatic", "manual"),
        transfer_data=obj(destination=STR, amount=INT),
        on_behalf_of=STR,
        automatic_payment_methods=obj(enabled=BOOL, allow_redirects=enum("always", "never")),
        return_url=STR,
        off_session=ANY,
        error_on_requires_action=BOOL,
        mandate_data=ANY,
        use_stripe_sdk=BOOL,
        radar_options=ANY,
        confirmation_token=STR,
        payment_details=ANY,
        customer_account=STR,
        hooks=ANY,
        amount_details=ANY,
    )
    PI_UPDATE = dict(PI_COMMON, transfer_data=obj(amount=INT), amount_details=ANY, payment_details=ANY)
    PI_CONFIRM = {
        "payment_method": STR,
        "return_url": STR,
        "receipt_email": STR,
        "setup_future_usage": enum("off_session", "on_session", None),
        "payment_method_options": ANY,
        "off_session": ANY,
        "mandate_data": ANY,
        "client_secret": STR,
        "use_stripe_sdk": BOOL,
        "error_on_requires_action": BOOL,
        "capture_method": enum("automatic", "automatic_async", "manual"),
        "payment_method_data": ANY,
        "payment_method_types": STRLIST,
        "allowed_payment_method_types": STRLIST,
        "excluded_payment_method_types": STRLIST,
        "shipping": ANY,
        "radar_options": ANY,
        "confirmation_token": STR,
        "key": STR,
        "_stripe_version": STR,
    }

    def _check_amount(self, amount, currency, param="amount"):
        if amount < 1:
            raise ApiError(
                400, "This value must be greater than or equal to 1.", code="parameter_invalid_integer", param=param
            )
        if amount > 99999999:
            raise ApiError(400, "Amount must be no more than $999,999.99", code="amount_too_large", param=param)
        minimum = CURRENCY_MIN.get(currency, 50)
        if amount < minimum:
            if currency in ZERO_DECIMAL:
                shown = "%d %s" % (minimum, currency)
            else:
                sym = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
                shown = "%s%d.%02d %s" % (sym, minimum // 100, minimum % 100, currency)
            raise ApiError(400, "Amount must be at least %s" % shown, code="amount_too_small", param=param)

    def _check_currency(self, currency, param="currency"):
        c = (currency or "").lower()
        if c not in CURRENCY_MIN:
            raise ApiError(
                400,
                "Invalid currency: %s. Stripe currently supports these currencies: %s"
                % (currency, ", ".join(sorted(CURRENCY_MIN))),
                param=param,
            )
        return c

    def _resolve_account(self, acct_id, param):
        a = self.objects.get(acct_id)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", acct_id, param, 400)
        return a

    @route("POST", "/v1/payment_intents")
    def pi_create(self, ctx, q):
        p = validate(q, self.PI_CREATE)
        require(p, "amount", "currency")
        currency = self._check_currency(p["currency"])
        self._check_amount(p["amount"], currency)
        cust = None
        if p.get("customer"):
            cust = self._get("customer", "customer", p["customer"], ctx, "customer", 400)
        td = None
        if p.get("transfer_data"):
            dest = p["transfer_data"].get("destination")
            if not dest:
                raise ApiError(
                    400,
                    "Missing required param: transfer_data[destination].",
                    code="parameter_missing",
                    param="transfer_data[destination]",
                )
            self._resolve_account(dest, "transfer_data[destination]")
            td = {"destination": dest}
            if "amount" in p["transfer_data"]:
                ta = p["transfer_data"]["amount"]
                if ta < 0 or ta > p["amount"]:
                    raise invalid(
                        "transfer_data[amount] must be between 0 and the PaymentIntent amount.",
                        param="transfer_data[amount]",
                    )
                td["amount"] = ta
        if p.get("on_behalf_of"):
            self._resolve_account(p["on_behalf_of"], "on_behalf_of")
        fee = p.get("application_fee_amount")
        if fee is not None:
            if fee < 0:
                raise ApiError(
                    400,
                    "This value must be greater than or equal to 0.",
                    code="parameter_invalid_integer",
                    param="application_fee_amount",
                )
            if fee > p["amount"]:
                raise invalid(
                    "The application fee amount must be less than or equal to the amount.",
                    param="application_fee_amount",
                )
            if not ctx.account and td is None:
                raise invalid(
                    "Can only apply an application_fee_amount when the PaymentIntent is attempting a "
                    "direct payment (using an OAuth key or Stripe-Account header) or destination payment "
                    "(using `transfer_data[destination]`).",
                    param="application_fee_amount",
                )
        self._check_payment_method_types_param(ctx, p)
        methods = self._payment_method_settings(ctx, p)
        self._check_descriptors(p, methods["payment_method_types"])
        for only_with_confirm in ("return_url", "off_session"):
            if only_with_confirm in p and not p.get("confirm"):
                raise invalid(
                    "The `%s` parameter can only be passed when `confirm` is `true`." % only_with_confirm,
                    param=only_with_confirm,
                )
        apm_new = methods["automatic_payment_methods"] or {}
        if (
            p.get("confirm")
            and not ctx.publishable
            and apm_new.get("enabled")
            and apm_new.get("allow_redirects") != "never"
            and not p.get("return_url")
        ):
            raise invalid(RETURN_URL_REQUIRED, param="return_url")
        pm = None
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
        elif isinstance(p.get("payment_method_data"), dict):
            pm = self._pm_from_data(ctx, p["payment_method_data"])
        now = self._now()
        pid = "pi_" + rand()
        apm = methods["automatic_payment_methods"]
        pi = {
            "id": pid,
            "object": "payment_intent",
            "amount": p["amount"],
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": fee,
            "allowed_payment_method_types": methods["allowed_payment_method_types"],
            "automatic_payment_methods": apm,
            "payment_record": None,  # set by Stripe for payments recorded outside it; never ours
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": p.get("capture_method") or "automatic",
            "client_secret": "%s_secret_%s" % (pid, rand(25)),
            "confirmation_method": p.get("confirmation_method") or "automatic",
            "created": now,
            "currency": currency,
            "customer": cust["id"] if cust else None,
            "description": p.get("description") or None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": p.get("on_behalf_of") or None,
            "payment_method": pm["id"] if pm else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": methods["payment_method_types"],
            "processing": None,
            "receipt_email": p.get("receipt_email") or None,
            "review": None,
            "setup_future_usage": p.get("setup_future_usage"),
            "shipping": p.get("shipping") or None,
            "statement_descriptor": p.get("statement_descriptor") or None,
            "statement_descriptor_suffix": p.get("statement_descriptor_suffix") or None,
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "transfer_data": td,
            "transfer_group": p.get("transfer_group") or None,
            "source": None,
            "excluded_payment_method_types": p.get("excluded_payment_method_types") or None,
            "customer_account": None,
            "managed_payments": None,
        }
        if apm and apm.get("enabled"):
            pi["payment_method_configuration_details"] = {"id": "pmc_" + rand(), "parent": None}
        self._apply_metadata(pi, p.get("metadata"))
        self._store("payment_intent", pi, ctx.account, index=("customer",))
        self.internal[pid] = {"return_url": p.get("return_url"), "charges": []}
        self._emit("payment_intent.created", pi, ctx, ctx.account)
        if p.get("confirm"):
            self._confirm(ctx, pi, None, p)
        return pi

    def _check_payment_method_types_param(self, ctx, p):
        """payment_method_types is no longer writable since 2026-09-30 (allowed_payment_method_types is)."""
        if "payment_method_types" in p and _version_date(ctx) >= PAYMENT_METHOD_TYPES_REMOVED_IN:
            raise invalid(
                "The `payment_method_types` parameter is not supported on API version %s. Use dynamic payment "
                "methods (`automatic_payment_methods`), `excluded_payment_method_types` or "
                "`allowed_payment_method_types` instead." % (ctx.api_version or API_VERSION),
                param="payment_method_types",
                code="payment_method_types_no_longer_supported",
            )

    def _payment_method_settings(self, ctx, p):
        """automatic_payment_methods, allowed_payment_method_types and payment_method_types of a new intent.

        Without any payment-method setting an intent uses dynamic payment methods with redirects allowed
        (since 2023-08-16), so a server-side confirmation then needs a return_url."""
        exclusive = [
            k
            for k in (
                "allowed_payment_method_types",
                "payment_method_types",
                "automatic_payment_methods",
                "excluded_payment_method_types",
                "payment_method_configuration",
            )
            if p.get(k)
        ]
        if len(exclusive) > 1 and (
            "allowed_payment_method_types" in exclusive
            or {"automatic_payment_methods", "payment_method_types"} <= set(exclusive)
        ):
            raise invalid(
                "You may only specify one of these parameters: %s." % ", ".join(exclusive),
                param=exclusive[0],
                code="parameters_exclusive",
            )
        apm = p.get("automatic_payment_methods")
        if p.get("allowed_payment_method_types"):
            allowed = list(p["allowed_payment_method_types"])
            usable = [t for t in allowed if t in SUPPORTED_TYPES]
            if not usable:
                raise invalid(
                    "None of the allowed_payment_method_types (%s) can be used for this PaymentIntent; the "
                    "emulator takes only card." % ", ".join(allowed),
                    param="allowed_payment_method_types",
                )
            return {
                "automatic_payment_methods": None,
                "allowed_payment_method_types": allowed,
                "payment_method_types": usable,
            }
        if p.get("payment_method_types"):
            return {
                "automatic_payment_methods": None,
                "allowed_payment_method_types": None,
                "payment_method_types": list(p["payment_method_types"]),
            }
        if apm:
            apm = {"allow_redirects": apm.get("allow_redirects", "always"), "enabled": bool(apm.get("enabled"))}
        elif _version_date(ctx) >= AUTOMATIC_PAYMENT_METHODS_SINCE:
            apm = {"allow_redirects": "always", "enabled": True}
        return {
            "automatic_payment_methods": apm,
            "allowed_payment_method_types": None,
            "payment_method_types": ["card"],
        }

    @staticmethod
    def _check_descriptors(p, types):
        if p.get("statement_descriptor") and "card" in types:
            raise invalid(STATEMENT_DESCRIPTOR_ON_CARD, param="statement_descriptor")
        suffix = p.get("statement_descriptor_suffix")
        if suffix and len(suffix) > DESCRIPTOR_MAX:
            raise invalid(
                "The statement descriptor suffix must be at most %d characters." % DESCRIPTOR_MAX,
                param="statement_descriptor_suffix",
            )

    def _pm_from_data(self, ctx, d):
        if d.get("type") not in (None, "card"):
            raise invalid(
                "The emulator only supports payment_method_data[type]=card.", param="payment_method_data[type]"
            )
        card = d.get("card") or {}
        if isinstance(card, dict) and card.get("token"):
            c = self._card_from_number(CARD_TOKENS.get(card["token"], "4242424242424242"))
        elif isinstance(card, dict) and card.get("number"):
            c = self._card_from_number(card["number"], param_prefix="payment_method_data[card]")
        else:
            raise ApiError(
                400,
                "Missing required param: payment_method_data[card].",
                code="parameter_missing",
                param="payment_method_data[card]",
            )
        return self._new_pm(ctx, c, d.get("billing_details") if isinstance(d.get("billing_details"), dict) else None)

    def _pi_for(self, ctx, pid, q):
        pi = self.objects.get(pid)
        if ctx.publishable:
            cs = q.get("client_secret")
            if not cs:
                raise ApiError(
                    400, "Missing required param: client_secret.", code="parameter_missing", param="client_secret"
                )
            if pi is None or pi.get("object") != "payment_intent" or pi["client_secret"] != cs:
                raise not_found("payment_intent", pid)
            return pi
        return self._get("payment_intent", "payment_intent", pid, ctx)

    @route("GET", "/v1/payment_intents/{pid}", publishable=True)
    def pi_retrieve(self, ctx, q, pid):
        validate(q, {"client_secret": STR, "expand": STRLIST})
        pi = self._pi_for(ctx, pid, q)
        if ctx.publishable:
            # Stripe.js sees a restricted view
            return {
                k: pi[k]
                for k in (
                    "id",
                    "object",
                    "amount",
                    "amount_details",
                    "automatic_payment_methods",
                    "canceled_at",
                    "cancellation_reason",
                    "capture_method",
                    "client_secret",
                    "confirmation_method",
                    "created",
                    "currency",
                    "description",
                    "last_payment_error",
                    "livemode",
                    "next_action",
                    "payment_method",
                    "payment_method_types",
                    "processing",
                    "receipt_email",
                    "setup_future_usage",
                    "shipping",
                    "status",
                )
            }
        return pi

    @route("GET", "/v1/payment_intents")
    def pi_list(self, ctx, q):
        cust = self._pop_str(q, "customer")
        if cust:
            return self._list(
                ctx,
                q,
                "payment_intent",
                "/v1/payment_intents",
                index=("customer", cust),
                pred=lambda o: o.get("customer") == cust,
            )
        return self._list(ctx, q, "payment_intent", "/v1/payment_intents")

    @route("POST", "/v1/payment_intents/{pid}")
    def pi_update(self, ctx, q, pid):
        p = validate(q, self.PI_UPDATE)
        self._check_payment_method_types_param(ctx, p)
        pi = self._get("payment_intent", "payment_intent", pid, ctx)
        self._check_descriptors(p, pi["payment_method_types"])
        st = pi["status"]
        only_meta = set(p) <= {"metadata", "description", "receipt_email", "shipping", "expand"}
        if st in ("succeeded", "canceled", "processing") and not only_meta:
            raise invalid(
                "This PaymentIntent's parameters could not be updated because it has a status of %s. You "
                "may only update the metadata, description, receipt_email and shipping of a PaymentIntent "
                "with one of the following statuses: succeeded, canceled." % st,
                code="payment_intent_unexpected_state",
            )
        if st == "requires_capture" and not (
            set(p)
            <= {"metadata", "description", "receipt_email", "shipping", "application_fee_amount", "transfer_data"}
        ):
            raise invalid(
                "This PaymentIntent could not be updated because it has a status of requires_capture.",
                code="payment_intent_unexpected_state",
            )
        currency = pi["currency"]
        if "currency" in p:
            currency = self._check_currency(p["currency"])
        if "amount" in p or "currency" in p:
            self._check_amount(p.get("amount", pi["amount"]), currency)
            pi["amount"] = p.get("amount", pi["amount"])
            pi["currency"] = currency
        if "customer" in p:
            if p["customer"]:
                self._get("customer", "customer", p["customer"], ctx, "customer", 400)
            pi["customer"] = p["customer"] or None
            self._index("payment_intent", "customer", pi["customer"], pid)
        for f in (
            "description",
            "receipt_email",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "transfer_group",
            "shipping",
        ):
            if f in p:
                pi[f] = p[f] or None
        if "setup_future_usage" in p:
            pi["setup_future_usage"] = p["setup_future_usage"]
        if "capture_method" in p:
            pi["capture_method"] = p["capture_method"]
        if "payment_method_types" in p:
            pi["payment_method_types"] = p["payment_method_types"] or ["card"]
            pi["automatic_payment_methods"] = None
        if p.get("allowed_payment_method_types"):
            methods = self._payment_method_settings(
                ctx, {"allowed_payment_method_types": p["allowed_payment_method_types"]}
            )
            pi.update(methods)
        if "application_fee_amount" in p:
            pi["application_fee_amount"] = p["application_fee_amount"]
        if p.get("transfer_data") and pi["transfer_data"] and "amount" in p["transfer_data"]:
            pi["transfer_data"]["amount"] = p["transfer_data"]["amount"]
        if p.get("payment_method"):
            pm = self._resolve_pm(ctx, p["payment_method"], "payment_method")
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
            pi["next_action"] = None
        elif isinstance(p.get("payment_method_data"), dict):
            pm = self._pm_from_data(ctx, p["payment_method_data"])
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        elif st == "requires_action" and ("amount" in p or "currency" in p):
            pi["status"] = "requires_confirmation"
            pi["next_action"] = None
        self._apply_metadata(pi, p.get("metadata"))
        return pi

    @route("POST", "/v1/payment_intents/{pid}/confirm", publishable=True)
    def pi_confirm(self, ctx, q, pid):
        p = validate(q, self.PI_CONFIRM)
        self._check_payment_method_types_param(ctx, p)
        pi = self._pi_for(ctx, pid, p)
        if p.get("capture_method"):
            if pi["status"] in ("requires_payment_method", "requires_confirmation", "requires_action"):
                pi["capture_method"] = p["capture_method"]
        for f in ("receipt_email", "shipping"):
            if p.get(f):
                pi[f] = p[f]
        if p.get("return_url"):
            self.internal[pid]["return_url"] = p["return_url"]
        if p.get("allowed_payment_method_types") and pi["status"] in (
            "requires_payment_method",
            "requires_confirmation",
        ):
            pi.update(
                self._payment_method_settings(ctx, {"allowed_payment_method_types": p["allowed_payment_method_types"]})
            )
        self._confirm(ctx, pi, p.get("payment_method"), p)
        if ctx.publishable:
            return self.pi_retrieve(ctx, {"client_secret": pi["client_secret"]}, pid)
        return pi

    def _confirm(self, ctx, pi, pm_param, p):
        st = pi["status"]
        if st not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise ApiError(
                400,
                "This PaymentIntent's payment_method could not be updated because it has a status of "
                "%s. You may only update the payment_method of a PaymentIntent with one of the "
                "following statuses: requires_payment_method, requires_confirmation, "
                "requires_action." % st
                if pm_param
                else "You cannot confirm this PaymentIntent because it has a status of %s. Only a "
                "PaymentIntent with one of the following statuses may be confirmed: "
                "requires_confirmation, requires_action, requires_payment_method." % st,
                code="payment_intent_unexpected_state",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        pm = self._pm_to_confirm(ctx, pi, pm_param, p)
        if pm is None:
            raise ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method. To "
                "confirm the PaymentIntent with %s, specify a payment method attached to this "
                "customer along with the customer ID." % (pi.get("customer") or "a payment method"),
                code="payment_intent_unexpected_state",
                param="payment_method",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        apm = pi.get("automatic_payment_methods") or {}
        if (
            not ctx.publishable
            and apm.get("enabled")
            and apm.get("allow_redirects") != "never"
            and not self.internal[pi["id"]].get("return_url")
        ):
            # Stripe.js (publishable key) handles redirects itself; a server-side confirmation must say
            # where a redirect-based method would come back to.
            raise invalid(RETURN_URL_REQUIRED, param="return_url")
        if pm.get("customer") and pi.get("customer") and pm["customer"] != pi["customer"]:
            raise invalid(
                "The provided PaymentMethod belongs to a different Customer than the one on this PaymentIntent.",
                param="payment_method",
                code="payment_method_unexpected_state",
            )
        pi["payment_method"] = pm["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        behaviour = self.internal.get(pm["id"], {}).get("behaviour", "success")
        if behaviour == "3ds" and not self.internal[pi["id"]].get("3ds_ok"):
            if _off_session(p.get("off_session")) and not p.get("_invoice_payment"):
                # nobody is there to authenticate: Stripe declines instead of asking for an action
                self._decline_authentication_required(ctx, pi, pm)
            if p.get("error_on_requires_action"):
                self._fail_auth(ctx, pi, pm, emit=True)
                raise ApiError(
                    402,
                    "Your card was declined. This transaction requires authentication.",
                    type="card_error",
                    code="authentication_required",
                    decline_code="authentication_required",
                    extra={"payment_intent": jcopy(self._out(pi)), "payment_method": jcopy(pm)},
                )
            pi["status"] = "requires_action"
            ret = self.internal[pi["id"]].get("return_url")
            if ret:
                pi["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {"return_url": ret, "url": "%s/_emulator/3ds/%s" % (ctx.base_url, pi["id"])},
                }
            else:
                pi["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "three_d_secure_redirect",
                        "stripe_js": "%s/_emulator/3ds/%s" % (ctx.base_url, pi["id"]),
                        "source": "src_" + rand(),
                    },
                }
            self._emit("payment_intent.requires_action", pi, ctx, ctx.account)
            return
        self._attempt_charge(ctx, pi, pm, behaviour)

    @route("POST", "/v1/payment_intents/{pid}/cancel")
    def pi_cancel(self, ctx, q, pid):
        p = validate(q, {"cancellation_reason": enum("duplicate", "fraudulent", "requested_by_customer", "abandoned")})
        pi = self._get("payment_intent", "payment_intent", pid, ctx)
        st = pi["status"]
        if st in ("succeeded", "canceled"):
            raise ApiError(
                400,
                "You cannot cancel this PaymentIntent because it has a status of %s. Only a "
                "PaymentIntent with one of the following statuses may be canceled: "
                "requires_payment_method, requires_capture, requires_confirmation, "
                "requires_action, processing." % st,
                code="payment_intent_unexpected_state",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        acct = self.owner.get(pid)
        if st == "requires_capture" and pi.get("latest_charge"):
            ch = self.objects[pi["latest_charge"]]
            before = jcopy(ch)
            ch["refunded"] = True
            ch["amount_refunded"] = ch["amount"]
            self._emit("charge.refunded", ch, ctx, acct, self._diff(before, ch))
        pi["status"] = "canceled"
        pi["canceled_at"] = self._now()
        pi["cancellation_reason"] = p.get("cancellation_reason")
        pi["amount_capturable"] = 0
        pi["next_action"] = None
        self._emit("payment_intent.canceled", pi, ctx, acct)
        return pi

    @route("POST", "/v1/payment_intents/{pid}/capture")
    def pi_capture(self, ctx, q, pid):
        p = validate(
            q,
            {
                "amount_to_capture": INT,
                "application_fee_amount": INT,
                "metadata": META,
                "statement_descriptor": STR,
                "statement_descriptor_suffix": STR,
                "transfer_data": obj(amount=INT),
                "final_capture": BOOL,
            },
        )
        pi = self._get("payment_intent", "payment_intent", pid, ctx)
        self._check_descriptors(p, pi["payment_method_types"])
        if pi["status"] != "requires_capture":
            raise ApiError(
                400,
                "This PaymentIntent could not be captured because it has a status of %s. Only a "
                "PaymentIntent with one of the following statuses may be captured: "
                "requires_capture." % pi["status"],
                code="payment_intent_unexpected_state",
                extra={"payment_intent": jcopy(self._out(pi))},
            )
        amount = p.get("amount_to_capture", pi["amount_capturable"])
        if amount < 1:
            raise ApiError(
                400,
                "This value must be greater than or equal to 1.",
                code="parameter_invalid_integer",
                param="amount_to_capture",
            )
        if amount > pi["amount_capturable"]:
            raise invalid(
                "The amount to capture (%d) must be less than or equal to the amount capturable (%d)."
                % (amount, pi["amount_capturable"]),
                param="amount_to_capture",
                code="amount_too_large",
            )
        if "application_fee_amount" in p:
            pi["application_fee_amount"] = p["application_fee_amount"]
        if p.get("transfer_data") and pi.get("transfer_data") and "amount" in p["transfer_data"]:
            pi["transfer_data"]["amount"] = p["transfer_data"]["amount"]
        self._apply_metadata(pi, p.get("metadata"))
        acct = self.owner.get(pid)
        ch = self.objects[pi["latest_charge"]]
        before = jcopy(ch)
        ch["application_fee_amount"] = pi.get("application_fee_amount")
        self._capture_charge(ctx, pi, ch, amount)
        # What is not captured is released, and Stripe counts it as refunded on the charge.
        released = ch["amount"] - amount
        if released:
            self.internal[ch["id"]]["released"] = released
            ch["amount_refunded"] = released
            ch["refunded"] = False
        pi["amount_capturable"] = 0
        pi["amount_received"] = amount
        pi["status"] = "succeeded"
        self._emit("charge.captured", ch, ctx, acct, self._diff(before, ch))
        self._emit("payment_intent.succeeded", pi, ctx, acct)
        self._after_capture(ctx, pi, ch)
        return pi

    def complete_3ds(self, pid, outcome):
        """Test helper: finish 3-D Secure for a PaymentIntent in requires_action."""
        ctx = Ctx()
        ctx.req_id = None
        pi = self.objects.get(pid)
        if pi is None or pi.get("object") != "payment_intent":
            raise not_found("payment_intent", pid)
        ctx.account = self.owner.get(pid)
        if pi["status"] != "requires_action":
            raise invalid(
                "PaymentIntent %s is not in requires_action (status: %s)." % (pid, pi["status"]),
                code="payment_intent_unexpected_state",
            )
        pm = self.objects[pi["payment_method"]]
        if outcome == "fail":
            self._fail_auth(ctx, pi, pm)
            return pi
        self.internal[pid]["3ds_ok"] = True
        pi["next_action"] = None
        try:
            self._attempt_charge(ctx, pi, pm, "success")
        except ApiError:
            pass
        return pi
