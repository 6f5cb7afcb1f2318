"""Connected accounts, onboarding and account links."""

import urllib.parse

from ..params import (
    ANY,
    META,
    STR,
    STRLIST,
    ApiError,
    enum,
    invalid,
    require,
    validate,
)
from .router import route
from .state import jcopy, not_found, rand
from .tables import COUNTRY_CURRENCY, INITIAL_REQUIREMENTS


class AccountsMixin:
    def _account_obj(self, aid, type_, country, email, business_type, caps):
        now = self._now()
        currency = COUNTRY_CURRENCY.get(country, "usd")
        req = {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(INITIAL_REQUIREMENTS),
            "disabled_reason": "requirements.past_due",
            "errors": [],
            "eventually_due": list(INITIAL_REQUIREMENTS),
            "past_due": list(INITIAL_REQUIREMENTS),
            "pending_verification": [],
        }
        controller = (
            {"type": "account"}
            if type_ == "standard"
            else {
                "fees": {"payer": "application"},
                "is_controller": True,
                "losses": {"payments": "application"},
                "requirement_collection": "stripe" if type_ == "express" else "application",
                "stripe_dashboard": {"type": "express" if type_ == "express" else "none"},
                "type": "application",
            }
        )
        return {
            "id": aid,
            "object": "account",
            "business_profile": {
                "annual_revenue": None,
                "estimated_worker_count": None,
                "mcc": None,
                "name": None,
                "product_description": None,
                "support_address": None,
                "support_email": None,
                "support_phone": None,
                "support_url": None,
                "url": None,
                "minority_owned_business_designation": None,
                "specified_commercial_transactions_act_url": None,
            },
            "business_type": business_type,
            "capabilities": caps,
            "charges_enabled": False,
            "controller": controller,
            "country": country,
            "created": now,
            "default_currency": currency,
            "details_submitted": False,
            "email": email,
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": "/v1/accounts/%s/external_accounts" % aid,
            },
            "future_requirements": {
                "alternatives": [],
                "current_deadline": None,
                "currently_due": [],
                "disabled_reason": None,
                "errors": [],
                "eventually_due": [],
                "past_due": [],
                "pending_verification": [],
            },
            "metadata": {},
            "payouts_enabled": False,
            "requirements": req,
            "settings": {
                "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
                "card_payments": {
                    "decline_on": {"avs_failure": False, "cvc_failure": False},
                    "statement_descriptor_prefix": None,
                    "statement_descriptor_prefix_kana": None,
                    "statement_descriptor_prefix_kanji": None,
                },
                "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
                "payments": {
                    "statement_descriptor": None,
                    "statement_descriptor_kana": None,
                    "statement_descriptor_kanji": None,
                    "statement_descriptor_prefix_kana": None,
                    "statement_descriptor_prefix_kanji": None,
                },
                "payouts": {
                    "debit_negative_balances": True,
                    "schedule": {"delay_days": 2, "interval": "daily"},
                    "statement_descriptor": None,
                },
            },
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
            "type": type_,
        }

    ACCOUNT_SPEC = {
        "type": enum("express", "custom", "standard", "none"),
        "country": STR,
        "email": STR,
        "business_type": enum("individual", "company", "non_profit", "government_entity", None),
        "capabilities": ANY,
        "metadata": META,
        "business_profile": ANY,
        "default_currency": STR,
        "tos_acceptance": ANY,
        "external_account": ANY,
        "settings": ANY,
        "individual": ANY,
        "company": ANY,
        "controller": ANY,
        "account_token": STR,
        "documents": ANY,
        "groups": ANY,
    }

    def _apply_account_params(self, a, p):
        if "email" in p:
            a["email"] = p["email"] or None
        if "business_type" in p:
            a["business_type"] = p["business_type"]
        if "default_currency" in p and p["default_currency"]:
            a["default_currency"] = self._check_currency(p["default_currency"], "default_currency")
        bp = p.get("business_profile")
        if isinstance(bp, dict):
            for k, v in bp.items():
                if k not in a["business_profile"]:
                    raise ApiError(
                        400,
                        "Received unknown parameter: business_profile[%s]" % k,
                        code="parameter_unknown",
                        param="business_profile[%s]" % k,
                    )
                a["business_profile"][k] = v or None if isinstance(v, str) else v
        caps = p.get("capabilities")
        if caps is not None:
            if not isinstance(caps, dict):
                raise invalid("Invalid object", param="capabilities")
            for name, spec in caps.items():
                if not isinstance(spec, dict) or set(spec) - {"requested"}:
                    raise invalid(
                        "Invalid capabilities[%s]: expected requested" % name, param="capabilities[%s]" % name
                    )
                req = str(spec.get("requested", "")).lower() == "true"
                if req:
                    if a["capabilities"].get(name) != "active":
                        a["capabilities"][name] = (
                            "active" if a["details_submitted"] and a["payouts_enabled"] else "inactive"
                        )
                else:
                    a["capabilities"].pop(name, None)
        tos = p.get("tos_acceptance")
        if isinstance(tos, dict):
            for k in ("date", "ip", "user_agent"):
                if k in tos:
                    a["tos_acceptance"][k] = int(tos[k]) if k == "date" and str(tos[k]).isdigit() else tos[k]
        self._apply_metadata(a, p.get("metadata"))

    @route("POST", "/v1/accounts")
    def account_create(self, ctx, q):
        if ctx.account:
            raise invalid("You cannot create connected accounts on behalf of a connected account.")
        p = validate(q, self.ACCOUNT_SPEC)
        type_ = p.get("type")
        if not type_:
            if isinstance(p.get("controller"), dict):
                type_ = "custom" if p["controller"].get("requirement_collection") == "application" else "express"
            else:
                raise ApiError(400, "Missing required param: type.", code="parameter_missing", param="type")
        if type_ == "none":
            type_ = "custom"
        country = (p.get("country") or "US").upper()
        if country not in COUNTRY_CURRENCY:
            raise invalid(
                "Country '%s' is unknown. Try using a 2-character alphanumeric country code instead, such "
                "as 'US', 'EG', or 'GB'." % p.get("country"),
                param="country",
            )
        if p.get("email"):
            self._check_email(p)
        aid = "acct_" + rand(16)
        a = self._account_obj(aid, type_, country, None, None, {})
        self._apply_account_params(a, p)
        self._store("account", a, None)
        self.internal[aid] = {"bank": "ba_" + rand()}
        return a

    def _onboard_fields(self, a):
        a["details_submitted"] = True
        a["charges_enabled"] = True
        a["payouts_enabled"] = True
        for f in ("currently_due", "eventually_due", "past_due", "pending_verification", "errors"):
            a["requirements"][f] = []
        a["requirements"]["disabled_reason"] = None
        a["requirements"]["current_deadline"] = None
        caps = a["capabilities"]
        for name in list(caps) + ["transfers", "card_payments"]:
            caps[name] = "active"
        (self.internal.get(a["id"]) or {}).pop("capability_reasons", None)
        if a["tos_acceptance"]["date"] is None:
            a["tos_acceptance"] = {"date": self._now(), "ip": "127.0.0.1", "user_agent": "stripe-emulator"}
        if not a["external_accounts"]["data"] and a["id"] in self.internal:
            bank = {
                "id": self.internal[a["id"]]["bank"],
                "object": "bank_account",
                "account": a["id"],
                "account_holder_name": None,
                "account_holder_type": None,
                "account_type": None,
                "available_payout_methods": ["standard"],
                "bank_name": "STRIPE TEST BANK",
                "country": a["country"],
                "currency": a["default_currency"],
                "default_for_currency": True,
                "fingerprint": rand(16),
                "last4": "6789",
                "metadata": {},
                "routing_number": "110000000",
                "status": "new",
            }
            a["external_accounts"] = dict(a["external_accounts"], data=[bank], total_count=1)
            self.internal[bank["id"]] = {"account": a["id"]}  # so a payout's destination expands

    def _announce(self, before, a, ctx):
        """An account changed: `account.updated`, then `capability.updated` for each capability whose
        status moved (requested, activated, deactivated), as Stripe sends both to Connect endpoints."""
        prev = self._diff(before, a)
        if not prev:
            return
        self._emit("account.updated", a, ctx, a["id"], prev)
        old, new = before.get("capabilities") or {}, a["capabilities"]
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                cap = self._capability_obj(a, name, new.get(name) or "unrequested")
                self._emit("capability.updated", cap, ctx, a["id"], {"status": old.get(name) or "unrequested"})

    def _capability_obj(self, a, name, status=None):
        due = list(a["requirements"]["currently_due"]) if status != "active" else []
        # a reason set with /_emulator/accounts/{id}/capabilities/{name} (Stripe's review, a pause...)
        own_reason = (self.internal.get(a["id"]) or {}).get("capability_reasons", {}).get(name)
        reqs = {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": due,
            # a capability names its own reasons: the account's requirements.* becomes fields_needed
            "disabled_reason": (
                None
                if status == "active"
                else own_reason
                if own_reason
                else None
                if not a["requirements"]["disabled_reason"]
                else "requirements.fields_needed"
                if a["requirements"]["disabled_reason"].startswith("requirements.")
                else "other"
            ),
            "errors": [],
            "eventually_due": due,
            "past_due": list(a["requirements"]["past_due"]) if status != "active" else [],
            "pending_verification": [],
        }
        status = status or a["capabilities"].get(name) or "unrequested"
        return {
            "id": name,
            "object": "capability",
            "account": a["id"],
            "future_requirements": dict(reqs, currently_due=[], eventually_due=[], past_due=[], disabled_reason=None),
            "requested": status != "unrequested",
            "requested_at": a["created"] if status != "unrequested" else None,
            "requirements": reqs,
            "status": status,
        }

    @route("GET", "/v1/accounts/{aid}/capabilities")
    def capability_list(self, ctx, q, aid):
        validate(q, {"expand": STRLIST})
        a = self._connected(ctx, aid)
        data = [self._capability_obj(a, name) for name in sorted(a["capabilities"])]
        url = "/v1/accounts/%s/capabilities" % aid
        return {"object": "list", "data": data, "has_more": False, "url": url}

    @route("GET", "/v1/accounts/{aid}/capabilities/{name}")
    def capability_retrieve(self, ctx, q, aid, name):
        validate(q, {"expand": STRLIST})
        a = self._connected(ctx, aid)
        if name not in a["capabilities"]:
            raise not_found("capability", name)
        return self._capability_obj(a, name)

    def onboard_account(self, aid):
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", aid)
        before = jcopy(a)
        self._onboard_fields(a)
        self._announce(before, a, None)
        return a

    def restrict_account(self, aid, fields=None):
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", aid)
        before = jcopy(a)
        due = list(fields or ["external_account", "individual.verification.document"])
        a["payouts_enabled"] = False
        a["requirements"]["currently_due"] = list(due)
        a["requirements"]["past_due"] = list(due)
        a["requirements"]["eventually_due"] = list(due)
        a["requirements"]["disabled_reason"] = "requirements.past_due"
        a["requirements"]["current_deadline"] = None
        if "transfers" in a["capabilities"]:
            a["capabilities"]["transfers"] = "inactive"
        self._announce(before, a, None)
        return a

    CAPABILITY_STATUSES = ("active", "inactive", "pending", "unrequested")

    def set_capability(self, aid, name, status, disabled_reason=None):
        """Stripe moves one capability on its own (a review, a pause, a new requirement, a reactivation)
        without touching the account's other flags: `payouts_enabled` can stay true while `transfers`
        is inactive. `unrequested` removes it. Emits account.updated and capability.updated."""
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            raise not_found("account", aid)
        if status not in self.CAPABILITY_STATUSES:
            raise invalid("status must be one of %s" % ", ".join(self.CAPABILITY_STATUSES), param="status")
        before = jcopy(a)
        if status == "unrequested":
            a["capabilities"].pop(name, None)
        else:
            a["capabilities"][name] = status
        reasons = self.internal.setdefault(aid, {}).setdefault("capability_reasons", {})
        if status == "active" or not disabled_reason:
            reasons.pop(name, None)
        else:
            reasons[name] = disabled_reason
        self._announce(before, a, None)
        return self._capability_obj(a, name, status)

    def _connected(self, ctx, aid, param="id", status=404):
        if ctx.account and aid != ctx.account:
            raise not_found("account", aid, param, status)
        a = self.objects.get(aid)
        if a is None or a.get("object") != "account" or a.get("deleted"):
            if aid == self.platform_account["id"]:
                return self.platform_account
            raise not_found("account", aid, param, status)
        return a

    @route("GET", "/v1/accounts/{aid}")
    def account_retrieve(self, ctx, q, aid):
        validate(q, {"expand": STRLIST})
        a = self.objects.get(aid)
        if a is not None and a.get("object") == "account" and a.get("deleted") and not ctx.account:
            return {"id": aid, "object": "account", "deleted": True}
        return self._connected(ctx, aid)

    @route("GET", "/v1/account")
    def account_self(self, ctx, q):
        validate(q, {"expand": STRLIST})
        if ctx.account:
            return self.objects[ctx.account]
        return self.platform_account

    @route("POST", "/v1/accounts/{aid}")
    def account_update(self, ctx, q, aid):
        p = validate(q, {k: v for k, v in self.ACCOUNT_SPEC.items() if k not in ("type", "country", "controller")})
        a = self._connected(ctx, aid)
        if a is self.platform_account:
            raise invalid("You cannot update the platform account through this emulator.")
        before = jcopy(a)
        if p.get("email"):
            self._check_email(p)
        self._apply_account_params(a, p)
        self._announce(before, a, ctx)
        return a

    @route("DELETE", "/v1/accounts/{aid}")
    def account_delete(self, ctx, q, aid):
        validate(q, {})
        a = self._connected(ctx, aid)
        if a is self.platform_account:
            raise invalid("You cannot delete the platform account.")
        a["deleted"] = True
        return {"id": aid, "object": "account", "deleted": True}

    @route("GET", "/v1/accounts")
    def account_list(self, ctx, q):
        return self._list(ctx, q, "account", "/v1/accounts")

    @route("POST", "/v1/accounts/{aid}/login_links")
    def login_link_create(self, ctx, q, aid):
        """A single-use link into the Express dashboard of an onboarded Express account."""
        validate(q, {})
        if ctx.account:
            raise invalid("Login links can only be created by the platform.")
        a = self._connected(ctx, aid, "account", 404)
        if a is self.platform_account or a.get("type") != "express":
            raise invalid(
                "Login links can only be created for Express accounts; %s is a %s account."
                % (aid, a.get("type") or "platform"),
                param="account",
            )
        if not a["details_submitted"]:
            raise invalid(
                "Cannot create a login link for an account that has not completed onboarding.", param="account"
            )
        token = rand(16)
        self.internal[token] = {"login_link": aid}  # single use: opening it spends it
        return {
            "object": "login_link",
            "created": self._now(),
            "url": "%s/_emulator/express_dashboard/%s?link=%s" % (ctx.base_url, aid, token),
        }

    @route("POST", "/v1/account_links")
    def account_link_create(self, ctx, q):
        p = validate(
            q,
            {
                "account": STR,
                "refresh_url": STR,
                "return_url": STR,
                "type": enum("account_onboarding", "account_update"),
                "collect": enum("currently_due", "eventually_due"),
                "collection_options": ANY,
            },
        )
        require(p, "account", "type")
        a = self._connected(ctx, p["account"], "account", 400)
        if p["type"] == "account_update" and a.get("type") in ("express", "standard"):
            raise invalid(
                "You cannot create `account_update` type Account Links for Express or Standard accounts.", param="type"
            )
        for f in ("refresh_url", "return_url"):
            if not p.get(f):
                raise ApiError(400, "Missing required param: %s." % f, code="parameter_missing", param=f)
            if not (p[f].startswith("http://") or p[f].startswith("https://")):
                raise invalid("Not a valid URL", param=f, code="url_invalid")
        now = self._now()
        url = "%s/_emulator/onboarding/%s?%s" % (
            ctx.base_url,
            a["id"],
            urllib.parse.urlencode({"return_url": p["return_url"], "refresh_url": p["refresh_url"], "link": rand(12)}),
        )
        return {"object": "account_link", "created": now, "expires_at": now + 300, "url": url}
