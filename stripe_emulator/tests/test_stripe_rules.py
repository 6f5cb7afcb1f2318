"""Stripe's defaults and routing, one test per rule (issue 12): what passes here must pass on Stripe."""

import json

import pytest
import requests
import stripe

from stripe_emulator.testing import EmulatorProcess

from .conftest import Receiver


def _types(receiver):
    return [(e["type"], e.get("account")) for e in receiver.events()]


# --- 1. Connect events go to Connect endpoints -----------------------------------------------------


def test_capability_status_changes_send_capability_updated_to_connect_endpoints(emulator, receiver):
    emulator.register_webhook(receiver.url, connect=True)
    acct = stripe.Account.create(type="express", capabilities={"transfers": {"requested": True}})
    assert stripe.Account.retrieve_capability(acct.id, "transfers").status == "inactive"
    emulator.post("/_emulator/accounts/%s/onboard" % acct.id)  # transfers (and card_payments) become active
    emulator.post("/_emulator/accounts/%s/restrict" % acct.id)  # transfers inactive again
    assert emulator.flush_webhooks(timeout=20)
    caps = sorted(  # deliveries run concurrently: compare regardless of arrival order
        (e["data"]["object"]["id"], e["data"]["object"]["status"], e["data"]["previous_attributes"]["status"])
        for e in receiver.events()
        if e["type"] == "capability.updated"
    )
    assert caps == [
        ("card_payments", "active", "unrequested"),
        ("transfers", "active", "inactive"),
        ("transfers", "inactive", "active"),
    ]
    assert all(e["account"] == acct.id for e in receiver.events())
    transfers = stripe.Account.retrieve_capability(acct.id, "transfers")
    assert (transfers.object, transfers.account, transfers.status) == ("capability", acct.id, "inactive")
    assert transfers.requirements.disabled_reason == "requirements.fields_needed"
    assert sorted(c.id for c in stripe.Account.list_capabilities(acct.id).data) == ["card_payments", "transfers"]
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Account.retrieve_capability(acct.id, "us_bank_account_ach_payments")
    assert ei.value.http_status == 404


def test_connected_account_events_reach_only_connect_endpoints(emulator, onboarded_account):
    platform, connect = Receiver(), Receiver()
    try:
        emulator.register_webhook(platform.url)
        emulator.register_webhook(connect.url, connect=True)
        acct = onboarded_account.id
        stripe.Account.modify(acct, metadata={"tier": "pro"})  # account.updated of a connected account
        stripe.Customer.create(email="platform@example.com")  # a platform event
        emulator.post("/_emulator/balance/topup", {"amount": 5000})
        stripe.Transfer.create(amount=1000, currency="usd", destination=acct)  # platform: transfer.created
        stripe.Payout.create(amount=500, currency="usd", stripe_account=acct)  # connected: payout.created
        assert emulator.flush_webhooks(timeout=20)
        assert ("account.updated", acct) in _types(connect) and ("payout.created", acct) in _types(connect)
        assert all(account == acct for _, account in _types(connect))
        assert ("customer.created", None) in _types(platform) and ("transfer.created", None) in _types(platform)
        assert all(account is None for _, account in _types(platform))
    finally:
        platform.close()
        connect.close()


def test_webhook_endpoint_created_with_connect_true_through_the_api(emulator, onboarded_account, receiver):
    we = stripe.WebhookEndpoint.create(url=receiver.url, enabled_events=["account.updated"], connect=True)
    stripe.Account.modify(onboarded_account.id, metadata={"a": "b"})
    assert emulator.flush_webhooks(timeout=20)
    events = receiver.events()
    assert [e["type"] for e in events] == ["account.updated"]
    stripe.Webhook.construct_event(
        receiver.requests[0]["body"].decode(), receiver.requests[0]["headers"]["Stripe-Signature"], we.secret
    )


def test_cli_connect_endpoint_gets_connected_events_and_survives_reset(receiver):
    with EmulatorProcess(
        quiet=True,
        time_scale=0.01,
        connect_webhook_url=receiver.url,
        connect_webhook_secret="whsec_cli_connect_secret",
    ) as emu:
        client = emu.stripe_client()
        emu.reset()
        client.v1.customers.create()  # platform event: not for a Connect endpoint
        acct = client.v1.accounts.create(params={"type": "express"})
        emu.post("/_emulator/accounts/%s/onboard" % acct.id)
        assert emu.flush_webhooks(timeout=20)
        # onboarding activates transfers and card_payments: one capability.updated each (any order)
        assert sorted(json.loads(r["body"])["type"] for r in receiver.requests) == [
            "account.updated",
            "capability.updated",
            "capability.updated",
        ]
        req = receiver.requests[0]
        stripe.Webhook.construct_event(
            req["body"].decode(), req["headers"]["Stripe-Signature"], "whsec_cli_connect_secret"
        )


# --- 9. request_log_url on errors, v0 in test-mode signatures --------------------------------------


def test_every_api_error_carries_its_request_log_url(emulator):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.retrieve("pi_missing")
    err = ei.value.json_body["error"]
    assert err["request_log_url"] == "https://dashboard.stripe.com/test/logs/%s" % ei.value.request_id
    r = requests.get(emulator.url + "/v1/nothing_here", headers={"Authorization": "Bearer sk_test_x"})
    assert r.status_code == 404 and r.json()["error"]["request_log_url"].endswith(r.headers["Request-Id"])
    r = requests.get(emulator.url + "/v1/customers")  # no key
    assert r.status_code == 401 and "request_log_url" in r.json()["error"]


def test_test_mode_signatures_carry_a_v0_that_is_not_the_endpoint_secrets(emulator, receiver):
    secret = emulator.register_webhook(receiver.url, ["customer.created"])
    stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=20)
    header = receiver.requests[0]["headers"]["Stripe-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    assert set(parts) == {"t", "v1", "v0"} and parts["v0"] != parts["v1"]
    stripe.Webhook.construct_event(receiver.requests[0]["body"].decode(), header, secret)


# --- 3. Automatic payment methods (API 2023-08-16 and later), payment_method_types removed (2026-09-30) ---


def test_an_intent_without_payment_method_settings_gets_automatic_payment_methods_with_redirects(emulator):
    pi = stripe.PaymentIntent.create(amount=2000, currency="usd")
    assert pi.automatic_payment_methods.to_dict() == {"allow_redirects": "always", "enabled": True}
    assert pi.payment_method_types == ["card"] and pi.allowed_payment_method_types is None


def test_confirming_it_on_the_server_without_return_url_is_a_400_naming_return_url(emulator):
    pi = stripe.PaymentIntent.create(amount=2000, currency="usd")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa")
    assert ei.value.http_status == 400 and ei.value.param == "return_url"
    assert "A `return_url` must be specified" in ei.value.user_message
    assert stripe.PaymentIntent.retrieve(pi.id).status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(amount=2000, currency="usd", payment_method="pm_card_visa", confirm=True)
    assert ei.value.param == "return_url" and stripe.PaymentIntent.list().data == [pi]
    done = stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa", return_url="https://shop.example/r")
    assert done.status == "succeeded"


def test_redirects_never_or_card_only_intents_confirm_without_return_url(emulator):
    never = stripe.PaymentIntent.create(
        amount=2000,
        currency="usd",
        automatic_payment_methods={"enabled": True, "allow_redirects": "never"},
        payment_method="pm_card_visa",
        confirm=True,
    )
    card = stripe.PaymentIntent.create(
        amount=2000,
        currency="usd",
        allowed_payment_method_types=["card", "ideal"],
        payment_method="pm_card_visa",
        confirm=True,
    )
    assert never.status == card.status == "succeeded"
    assert card.automatic_payment_methods is None
    assert card.allowed_payment_method_types == ["card", "ideal"] and card.payment_method_types == ["card"]


def test_payment_method_types_is_refused_on_this_api_version_and_accepted_on_older_ones(emulator):
    for call in (
        lambda: stripe.PaymentIntent.create(amount=2000, currency="usd", payment_method_types=["card"]),
        lambda: stripe.PaymentIntent.modify(
            stripe.PaymentIntent.create(amount=2000, currency="usd").id, payment_method_types=["card"]
        ),
    ):
        with pytest.raises(stripe.InvalidRequestError) as ei:
            call()
        assert ei.value.code == "payment_method_types_no_longer_supported" and ei.value.param == "payment_method_types"
    older = stripe.PaymentIntent.create(
        amount=2000, currency="usd", payment_method_types=["card"], stripe_version="2026-08-26.dahlia"
    )
    assert older.payment_method_types == ["card"] and older.automatic_payment_methods is None
    before_apm = stripe.PaymentIntent.create(amount=2000, currency="usd", stripe_version="2023-06-16")
    assert before_apm.automatic_payment_methods is None


def test_allowed_payment_method_types_excludes_the_other_settings(emulator):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(
            amount=2000,
            currency="usd",
            allowed_payment_method_types=["card"],
            automatic_payment_methods={"enabled": True},
        )
    assert ei.value.code == "parameters_exclusive"


def test_stripe_js_confirms_an_automatic_payment_methods_intent_without_return_url(emulator):
    pi = stripe.PaymentIntent.create(amount=2000, currency="usd")
    r = requests.post(
        emulator.url + "/v1/payment_intents/%s/confirm" % pi.id,
        data={"client_secret": pi.client_secret, "payment_method": "pm_card_visa", "use_stripe_sdk": "true"},
        headers={"Authorization": "Bearer pk_test_emulator"},
    )
    assert r.status_code == 200 and r.json()["status"] == "succeeded"


# --- 4. off_session with a card that needs authentication ------------------------------------------


def test_off_session_with_an_authentication_card_is_a_402_and_the_intent_needs_a_new_method(emulator):
    cus = stripe.Customer.create()
    pm = stripe.PaymentMethod.attach("pm_card_authenticationRequired", customer=cus.id)
    with pytest.raises(stripe.CardError) as ei:
        stripe.PaymentIntent.create(
            amount=2000,
            currency="usd",
            customer=cus.id,
            payment_method=pm.id,
            allowed_payment_method_types=["card"],
            off_session=True,
            confirm=True,
        )
    err = ei.value.json_body["error"]
    assert ei.value.http_status == 402 and err["code"] == "authentication_required"
    assert err["decline_code"] == "authentication_required" and err["charge"].startswith("ch_")
    pi = stripe.PaymentIntent.retrieve(err["payment_intent"]["id"])
    assert pi.status == "requires_payment_method" and pi.next_action is None
    assert pi.last_payment_error.code == "authentication_required"
    assert pi.last_payment_error.payment_method.id == pm.id
    assert stripe.Charge.retrieve(err["charge"]).status == "failed"


def _card_payment(**extra):
    params = dict(amount=5000, currency="usd", allowed_payment_method_types=["card"], payment_method="pm_card_visa")
    params.update(extra)
    return stripe.PaymentIntent.create(confirm=True, **params)


# --- 5. charge.refunds only when expanded, never in webhook payloads -------------------------------


def test_a_charge_has_refunds_only_when_expanded_and_never_in_events(emulator):
    pi = _card_payment()
    refund = stripe.Refund.create(payment_intent=pi.id, amount=1000)
    charge = stripe.Charge.retrieve(pi.latest_charge)
    assert "refunds" not in charge
    expanded = stripe.Charge.retrieve(pi.latest_charge, expand=["refunds"])
    assert [r.id for r in expanded.refunds.data] == [refund.id] and expanded.refunds.total_count == 1
    nested = stripe.PaymentIntent.retrieve(pi.id, expand=["latest_charge.refunds"])
    assert nested.latest_charge.refunds.data[0].id == refund.id
    for event in stripe.Event.list(limit=100).data:
        if event.data.object.object == "charge":
            assert "refunds" not in event.data.object, event.type
    assert [r.id for r in stripe.Refund.list(charge=pi.latest_charge).data] == [refund.id]


# --- 6. Asynchronous capture ------------------------------------------------------------------------


def test_balance_transaction_and_transfer_arrive_with_a_later_charge_updated(emulator, onboarded_account, receiver):
    emulator.register_webhook(receiver.url)
    emulator.configure(capture_delay=100)  # hold the settlement until the test has looked
    pi = _card_payment(transfer_data={"destination": onboarded_account.id}, expand=["latest_charge"])
    assert pi.latest_charge.balance_transaction is None and pi.latest_charge.transfer is None
    assert stripe.Charge.retrieve(pi.latest_charge.id).balance_transaction is None
    emulator.configure(capture_delay=0.5)
    assert emulator.flush_webhooks(timeout=20)
    by_type = {e["type"]: e for e in receiver.events()}
    succeeded, updated = by_type["charge.succeeded"], by_type["charge.updated"]
    assert succeeded["data"]["object"]["balance_transaction"] is None
    assert succeeded["data"]["object"]["transfer"] is None
    assert updated["data"]["object"]["balance_transaction"].startswith("txn_")
    assert updated["data"]["object"]["transfer"].startswith("tr_")
    assert updated["data"]["previous_attributes"] == {"balance_transaction": None, "transfer": None}
    charge = stripe.Charge.retrieve(pi.latest_charge.id)
    assert charge.balance_transaction == updated["data"]["object"]["balance_transaction"]


# --- 7. Endpoint versions, inquiries, evidence, validations, partial capture -----------------------


def test_endpoints_record_their_api_version_and_refuse_one_the_emulator_cannot_render(emulator, receiver):
    we = stripe.WebhookEndpoint.create(url=receiver.url, enabled_events=["*"], api_version=stripe.api_version)
    assert we.api_version == "2026-10-28.endive"
    stripe.Customer.create()
    assert emulator.flush_webhooks(timeout=20)
    assert receiver.events()[0]["api_version"] == "2026-10-28.endive"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.WebhookEndpoint.create(url=receiver.url, enabled_events=["*"], api_version="2020-08-27")
    assert ei.value.http_status == 400 and ei.value.param == "api_version"


def test_the_inquiry_card_opens_an_inquiry_that_withdraws_nothing_and_winning_evidence_closes_it(emulator):
    pi = _card_payment(payment_method="pm_card_createDisputeInquiry")
    assert emulator.flush_webhooks(timeout=20)
    dispute = stripe.Dispute.list(charge=pi.latest_charge).data[0]
    assert dispute.status == "warning_needs_response" and dispute.balance_transactions == []
    assert dispute.is_charge_refundable is True
    assert stripe.Event.list(type="charge.dispute.funds_withdrawn").data == []
    submitted = stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": "winning_evidence"})
    assert submitted.status == "warning_under_review"
    assert emulator.flush_webhooks(timeout=20)
    assert stripe.Dispute.retrieve(dispute.id).status == "warning_closed"
    assert stripe.Event.list(type="charge.dispute.closed").data[0].data.object.status == "warning_closed"


@pytest.mark.parametrize(("text", "status"), [("winning_evidence", "won"), ("losing_evidence", "lost")])
def test_submitted_evidence_decides_a_chargeback_as_stripe_test_mode_does(emulator, text, status):
    pi = _card_payment()
    dispute = emulator.post("/_emulator/charges/%s/dispute" % pi.latest_charge, {})
    assert stripe.Dispute.modify(dispute["id"], evidence={"uncategorized_text": text}).status == "under_review"
    assert emulator.flush_webhooks(timeout=20)
    closed = stripe.Dispute.retrieve(dispute["id"])
    assert closed.status == status and len(closed.balance_transactions) == (2 if status == "won" else 1)


def test_statement_descriptor_is_refused_on_card_intents_and_the_suffix_is_limited(emulator):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(amount=2000, currency="usd", statement_descriptor="TALKPAY SESSION")
    assert ei.value.param == "statement_descriptor" and "statement_descriptor_suffix" in ei.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(amount=2000, currency="usd", statement_descriptor_suffix="X" * 23)
    assert ei.value.param == "statement_descriptor_suffix"
    ok = stripe.PaymentIntent.create(amount=2000, currency="usd", statement_descriptor_suffix="SESSION 42")
    assert ok.statement_descriptor_suffix == "SESSION 42"


@pytest.mark.parametrize("param", ["return_url", "off_session"])
def test_return_url_and_off_session_need_confirm_true_on_create(emulator, param):
    value = "https://shop.example/back" if param == "return_url" else True
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(amount=2000, currency="usd", **{param: value})
    assert ei.value.http_status == 400 and ei.value.param == param


def test_a_partial_capture_counts_the_released_amount_as_refunded(emulator):
    pi = _card_payment(capture_method="manual")
    stripe.PaymentIntent.capture(pi.id, amount_to_capture=3000)
    charge = stripe.Charge.retrieve(pi.latest_charge)
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (3000, 2000, False)
    stripe.Refund.create(charge=charge.id)  # refunds what was captured, not more
    charge = stripe.Charge.retrieve(charge.id)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    assert sum(r.amount for r in stripe.Refund.list(charge=charge.id).data) == 3000


# --- 8. Routes real integrations call --------------------------------------------------------------


def test_login_links_open_the_express_dashboard_of_an_onboarded_express_account(emulator, onboarded_account):
    link = stripe.Account.create_login_link(onboarded_account.id)
    assert link.object == "login_link" and link.created > 0
    page = requests.get(link.url)
    assert page.status_code == 200 and onboarded_account.id in page.text
    # single use, as on Stripe: the same link again (or a made-up one) shows no dashboard
    again = requests.get(link.url)
    assert again.status_code == 410 and "expired" in again.text and "Available" not in again.text
    made_up = requests.get(link.url.split("?")[0] + "?link=guess")
    assert made_up.status_code == 410
    assert requests.get(stripe.Account.create_login_link(onboarded_account.id).url).status_code == 200
    fresh = stripe.Account.create(type="express")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Account.create_login_link(fresh.id)
    assert ei.value.http_status == 400 and "onboarding" in ei.value.user_message
    custom = stripe.Account.create(type="custom")
    emulator.post("/_emulator/accounts/%s/onboard" % custom.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Account.create_login_link(custom.id)


def test_an_uncaptured_charge_is_captured_through_the_charges_route(emulator):
    pi = _card_payment(capture_method="manual")
    charge = stripe.Charge.capture(pi.latest_charge, amount=4000)
    assert charge.captured and charge.amount_captured == 4000 and charge.amount_refunded == 1000
    assert stripe.PaymentIntent.retrieve(pi.id).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Charge.capture(pi.latest_charge)


def test_a_card_refund_cannot_be_canceled(emulator):
    refund = stripe.Refund.create(payment_intent=_card_payment().id)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.cancel(refund.id)
    assert ei.value.http_status == 400 and "requires_action" in ei.value.user_message


def test_customer_sources_only_when_expanded(emulator):
    customer = stripe.Customer.create()
    assert "sources" not in stripe.Customer.retrieve(customer.id)
    sources = stripe.Customer.retrieve(customer.id, expand=["sources"]).sources
    assert sources.object == "list" and sources.data == [] and sources.url.endswith("/sources")


def test_payout_destination_and_transfer_destination_payment_expand(emulator, onboarded_account):
    acct = onboarded_account.id
    emulator.post("/_emulator/balance/topup", {"amount": 5000})
    transfer = stripe.Transfer.create(amount=2000, currency="usd", destination=acct, expand=["destination_payment"])
    payment = transfer.destination_payment
    assert payment.id.startswith("py_") and payment.amount == 2000 and payment.source_transfer == transfer.id
    assert stripe.Charge.retrieve(payment.id, stripe_account=acct).status == "succeeded"
    payout = stripe.Payout.create(amount=500, currency="usd", stripe_account=acct, expand=["destination"])
    assert payout.destination.object == "bank_account" and payout.destination.account == acct


def test_payouts_list_filters_on_arrival_date(emulator, onboarded_account):
    acct = onboarded_account.id
    emulator.post("/_emulator/balance/topup", {"amount": 5000})
    stripe.Transfer.create(amount=3000, currency="usd", destination=acct)
    standard = stripe.Payout.create(amount=500, currency="usd", stripe_account=acct)
    instant = stripe.Payout.create(amount=500, currency="usd", stripe_account=acct, method="instant")
    later = stripe.Payout.list(stripe_account=acct, arrival_date={"gt": instant.arrival_date}).data
    assert [p.id for p in later] == [standard.id]
    exact = stripe.Payout.list(stripe_account=acct, arrival_date=instant.arrival_date).data
    assert [p.id for p in exact] == [instant.id]


def test_search_payment_intents_charges_and_customers_with_the_query_language(emulator):
    alice = stripe.Customer.create(email="alice@example.com", name="Alice", metadata={"tier": "gold"})
    stripe.Customer.create(email="bob@example.com", name="Bob")
    big = _card_payment(amount=9000, customer=alice.id, metadata={"booking_id": "42"})
    _card_payment(amount=2000)
    found = stripe.Customer.search(query="email~'alice' AND metadata['tier']:'gold'")
    assert found.object == "search_result" and [c.id for c in found.data] == [alice.id]
    intents = stripe.PaymentIntent.search(query="amount>5000 AND status:'succeeded'")
    assert [i.id for i in intents.data] == [big.id]
    assert [i.id for i in stripe.PaymentIntent.search(query='metadata["booking_id"]:"42"').data] == [big.id]
    charges = stripe.Charge.search(query="customer:'%s' OR amount:2000" % alice.id, limit=1)
    assert len(charges.data) == 1 and charges.has_more and charges.next_page
    rest = stripe.Charge.search(query="customer:'%s' OR amount:2000" % alice.id, page=charges.next_page)
    assert len(rest.data) == 1 and not rest.has_more
    assert stripe.Customer.search(query="-name:'Alice'").data[0].name == "Bob"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Customer.search(query="email:'a' AND name:'b' OR phone:'c'")
    assert ei.value.param == "query"
