import pytest
import requests
import stripe


def test_customer_crud_and_list_by_email(emulator):
    c = stripe.Customer.create(email="ann@example.com", name="Ann", metadata={"user_id": "7"})
    assert c.id.startswith("cus_") and c.object == "customer" and c.metadata["user_id"] == "7"
    stripe.Customer.create(email="bob@example.com")
    c2 = stripe.Customer.modify(c.id, name="Ann B", metadata={"tier": "gold"})
    assert c2.name == "Ann B" and c2.metadata.to_dict() == {"user_id": "7", "tier": "gold"}
    found = stripe.Customer.list(email="ann@example.com")
    assert [x.id for x in found.data] == [c.id]
    assert len(stripe.Customer.list().data) == 2
    d = stripe.Customer.delete(c.id)
    assert d.deleted is True
    assert stripe.Customer.retrieve(c.id).deleted is True
    assert [x.email for x in stripe.Customer.list().data] == ["bob@example.com"]
    types = [e.type for e in stripe.Event.list().data]
    assert types.count("customer.created") == 2 and "customer.updated" in types and "customer.deleted" in types


def test_payment_method_tokens_create_attach_detach(emulator):
    pm = stripe.PaymentMethod.create(
        type="card", card={"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    )
    assert pm.id.startswith("pm_") and pm.card.last4 == "4242" and pm.card.brand == "visa"
    mc = stripe.PaymentMethod.retrieve("pm_card_mastercard")
    assert mc.card.brand == "mastercard" and mc.id.startswith("pm_")
    cus = stripe.Customer.create(email="c@example.com")
    pm = stripe.PaymentMethod.attach(pm.id, customer=cus.id)
    assert pm.customer == cus.id
    listed = stripe.PaymentMethod.list(customer=cus.id, type="card")
    assert [p.id for p in listed.data] == [pm.id]
    assert [p.id for p in stripe.Customer.list_payment_methods(cus.id).data] == [pm.id]
    pm = stripe.PaymentMethod.detach(pm.id)
    assert pm.customer is None
    pm = stripe.PaymentMethod.modify(pm.id, metadata={"nick": "work"}, billing_details={"name": "Ann"})
    assert pm.metadata.nick == "work" and pm.billing_details.name == "Ann"
    upd = stripe.Event.list(type="payment_method.updated").data[0]
    assert upd.data.previous_attributes.billing_details.name is None
    with pytest.raises(stripe.CardError) as ei:
        stripe.PaymentMethod.create(type="card", card={"number": "4242424242424241", "exp_month": 1, "exp_year": 2035})
    assert ei.value.code == "incorrect_number"


def test_create_and_confirm_visa_succeeds_with_charge_and_balance(emulator):
    cus = stripe.Customer.create(email="payer@example.com")
    pi = stripe.PaymentIntent.create(
        amount=2000,
        currency="usd",
        customer=cus.id,
        metadata={"booking_id": "b1"},
        description="Booking b1",
        receipt_email="payer@example.com",
        automatic_payment_methods={"enabled": True},
    )
    assert pi.status == "requires_payment_method"
    assert pi.client_secret.startswith(pi.id + "_secret_")
    assert pi.latest_charge is None and pi.amount_received == 0
    # automatic payment methods with redirects allowed: a server-side confirmation names its return_url
    pi = stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa", return_url="https://shop.example/done")
    assert pi.status == "succeeded" and pi.amount_received == 2000
    assert isinstance(pi.latest_charge, str) and pi.latest_charge.startswith("ch_")
    assert emulator.flush_webhooks()  # the capture settles asynchronously (balance_transaction, transfer)
    pi = stripe.PaymentIntent.retrieve(
        pi.id, expand=["latest_charge.balance_transaction", "customer", "payment_method"]
    )
    ch = pi.latest_charge
    assert ch.object == "charge" and ch.paid and ch.captured and ch.status == "succeeded"
    assert ch.metadata["booking_id"] == "b1" and ch.payment_intent == pi.id and ch.customer == cus.id
    assert ch.outcome.type == "authorized"
    txn = ch.balance_transaction
    assert txn.id.startswith("txn_") and txn.amount == 2000 and txn.fee == 88 and txn.net == 1912
    assert txn.status == "pending" and txn.available_on == txn.created + 2 * 86400
    assert pi.customer.email == "payer@example.com" and pi.payment_method.card.last4 == "4242"
    bal = stripe.Balance.retrieve()
    assert bal.pending[0].amount == 1912 and bal.pending[0].currency == "usd" and bal.available[0].amount == 0
    assert stripe.BalanceTransaction.retrieve(txn.id).source == ch.id
    assert [c.id for c in stripe.Charge.list(payment_intent=pi.id).data] == [ch.id]
    assert [c.id for c in stripe.Charge.list(customer=cus.id).data] == [ch.id]
    types = [e.type for e in stripe.Event.list().data]
    assert types[:4] == ["charge.updated", "payment_intent.succeeded", "charge.succeeded", "payment_intent.created"]


def test_create_with_confirm_true_and_statement_fields(emulator, onboarded_account):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=5000,
        currency="usd",
        payment_method="pm_card_visa",
        confirm=True,
        transfer_group="booking_9",
        application_fee_amount=500,
        transfer_data={"destination": onboarded_account.id},
        on_behalf_of=onboarded_account.id,
        statement_descriptor_suffix="TALKPAY",
        capture_method="automatic",
    )
    assert pi.status == "succeeded" and pi.transfer_data.destination == onboarded_account.id
    assert emulator.flush_webhooks()  # the capture settles asynchronously (balance_transaction, transfer)
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert ch.transfer_group == "booking_9" and ch.application_fee_amount == 500
    assert ch.transfer.startswith("tr_")
    tr = stripe.Transfer.retrieve(ch.transfer)
    assert tr.amount == 4500 and tr.destination == onboarded_account.id and tr.source_transaction == ch.id
    # the destination charge's funds are pending on the connected account until the charge's are available
    cb = stripe.Balance.retrieve(stripe_account=onboarded_account.id)
    assert cb.pending[0].amount == 4500 and cb.available[0].amount == 0


@pytest.mark.parametrize(
    "pm,decline_code,code",
    [
        ("pm_card_chargeDeclined", "generic_decline", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "card_declined"),
    ],
)
def test_declines_raise_card_error_and_reset_intent(emulator, pm, decline_code, code):
    pi = stripe.PaymentIntent.create(allowed_payment_method_types=["card"], amount=1500, currency="usd")
    with pytest.raises(stripe.CardError) as ei:
        stripe.PaymentIntent.confirm(pi.id, payment_method=pm)
    err = ei.value
    assert err.http_status == 402 and err.code == code and err.error.decline_code == decline_code
    assert err.error.type == "card_error"
    assert err.error.payment_intent.id == pi.id
    assert err.error.payment_intent.status == "requires_payment_method"
    pi = stripe.PaymentIntent.retrieve(pi.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == decline_code
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert ch.status == "failed" and ch.failure_code == code and not ch.paid
    types = [e.type for e in stripe.Event.list().data]
    assert "charge.failed" in types and "payment_intent.payment_failed" in types
    # a retry with a good card succeeds
    pi = stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa")
    assert pi.status == "succeeded" and pi.last_payment_error is None


@pytest.mark.parametrize(
    "number,expect",
    [
        ("4242424242424242", "succeeded"),
        ("4000000000000002", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
        ("4000002500003155", "requires_action"),
        ("4000000000000259", "succeeded"),
    ],
)
def test_raw_card_numbers(emulator, number, expect):
    pm = stripe.PaymentMethod.create(
        type="card", card={"number": number, "exp_month": 4, "exp_year": 2040, "cvc": "314"}
    )
    try:
        pi = stripe.PaymentIntent.create(
            allowed_payment_method_types=["card"], amount=1000, currency="eur", payment_method=pm.id, confirm=True
        )
        assert pi.status == expect
    except stripe.CardError as e:
        assert e.error.decline_code == expect


def test_three_d_secure_success_and_failure(emulator):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=3000,
        currency="usd",
        payment_method="pm_card_authenticationRequired",
        confirm=True,
    )
    assert pi.status == "requires_action" and pi.next_action.type == "use_stripe_sdk"
    assert pi.latest_charge is None
    done = emulator.post("/_emulator/payment_intents/%s/3ds" % pi.id, {"outcome": "succeed"})
    assert done["status"] == "succeeded"
    assert stripe.PaymentIntent.retrieve(pi.id).latest_charge.startswith("ch_")

    pi2 = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=3000,
        currency="usd",
        payment_method="pm_card_authenticationRequired",
        confirm=True,
        return_url="https://app.example/return",
    )
    assert pi2.next_action.type == "redirect_to_url"
    r = requests.get(pi2.next_action.redirect_to_url.url + "?outcome=fail", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("https://app.example/return?")
    pi2 = stripe.PaymentIntent.retrieve(pi2.id)
    assert pi2.status == "requires_payment_method"
    assert pi2.last_payment_error.code == "payment_intent_authentication_failure"
    types = [e.type for e in stripe.Event.list().data]
    assert types.count("payment_intent.requires_action") == 2 and "payment_intent.payment_failed" in types


def test_manual_capture_partial_and_cancel(emulator):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=4000,
        currency="usd",
        payment_method="pm_card_visa",
        capture_method="manual",
        confirm=True,
    )
    assert pi.status == "requires_capture" and pi.amount_capturable == 4000
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.capture(pi.id, amount_to_capture=5000)
    assert ei.value.param == "amount_to_capture"
    pi = stripe.PaymentIntent.capture(pi.id, amount_to_capture=3000)
    assert pi.status == "succeeded" and pi.amount_received == 3000 and pi.amount_capturable == 0
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert ch.captured and ch.amount_captured == 3000
    types = [e.type for e in stripe.Event.list().data]
    assert "payment_intent.amount_capturable_updated" in types and "charge.captured" in types

    pi2 = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=4000,
        currency="usd",
        payment_method="pm_card_visa",
        capture_method="manual",
        confirm=True,
    )
    pi2 = stripe.PaymentIntent.cancel(pi2.id, cancellation_reason="requested_by_customer")
    assert pi2.status == "canceled" and pi2.cancellation_reason == "requested_by_customer" and pi2.canceled_at
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.cancel(pi2.id)
    assert ei.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa")
    assert ei.value.code == "payment_intent_unexpected_state"


def test_update_and_list_by_customer_with_pagination(emulator):
    cus = stripe.Customer.create()
    ids = [
        stripe.PaymentIntent.create(
            allowed_payment_method_types=["card"], amount=1000 + i, currency="usd", customer=cus.id
        ).id
        for i in range(5)
    ]
    stripe.PaymentIntent.create(allowed_payment_method_types=["card"], amount=999, currency="usd")
    page = stripe.PaymentIntent.list(customer=cus.id, limit=2)
    assert [p.id for p in page.data] == ids[::-1][:2] and page.has_more and page.url == "/v1/payment_intents"
    page2 = stripe.PaymentIntent.list(customer=cus.id, limit=2, starting_after=page.data[-1].id)
    assert [p.id for p in page2.data] == ids[::-1][2:4]
    back = stripe.PaymentIntent.list(customer=cus.id, limit=2, ending_before=page2.data[0].id)
    assert [p.id for p in back.data] == ids[::-1][:2]
    all_ids = [p.id for p in stripe.PaymentIntent.list(customer=cus.id).auto_paging_iter()]
    assert all_ids == ids[::-1]
    pi = stripe.PaymentIntent.modify(ids[0], amount=2500, metadata={"k": "v"}, description="d")
    assert pi.amount == 2500 and pi.metadata.k == "v"
    pi = stripe.PaymentIntent.modify(ids[0], payment_method="pm_card_visa")
    assert pi.status == "requires_confirmation"
    pi = stripe.PaymentIntent.confirm(ids[0])
    assert pi.status == "succeeded"


def test_publishable_key_only_with_client_secret(emulator):
    pi = stripe.PaymentIntent.create(allowed_payment_method_types=["card"], amount=1200, currency="usd")
    pk = "pk_test_frontend"
    got = stripe.PaymentIntent.retrieve(pi.id, api_key=pk, client_secret=pi.client_secret)
    assert got.status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.PaymentIntent.retrieve(pi.id, api_key=pk, client_secret=pi.id + "_secret_wrong")
    with pytest.raises(stripe.AuthenticationError):
        stripe.PaymentIntent.list(api_key=pk)
    confirmed = stripe.PaymentIntent.confirm(
        pi.id, api_key=pk, client_secret=pi.client_secret, payment_method="pm_card_visa"
    )
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.AuthenticationError):
        stripe.PaymentIntent.list(api_key="sk_live_nope")


def test_stripe_client_with_base_addresses(emulator, client):
    cus = client.v1.customers.create(params={"email": "x@example.com"})
    pi = client.v1.payment_intents.create(
        params={
            "allowed_payment_method_types": ["card"],
            "amount": 700,
            "currency": "gbp",
            "customer": cus.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert pi.status == "succeeded"
    assert client.v1.payment_intents.retrieve(pi.id).amount_received == 700
    assert [p.id for p in client.v1.payment_intents.list(params={"customer": cus.id}).data] == [pi.id]


def test_idempotent_replay_success_error_and_mismatch(emulator):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=2000, currency="usd", idempotency_key="k1"
    )
    again = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=2000, currency="usd", idempotency_key="k1"
    )
    assert again.id == pi.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(stripe.PaymentIntent.list().data) == 1
    # a decline is replayed with the same status and body
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as ei:
            stripe.PaymentIntent.create(
                allowed_payment_method_types=["card"],
                amount=2000,
                currency="usd",
                payment_method="pm_card_chargeDeclined",
                confirm=True,
                idempotency_key="k2",
            )
        errors.append(ei.value)
    assert errors[0].http_status == errors[1].http_status == 402
    assert errors[0].json_body == errors[1].json_body
    assert errors[1].headers.get("Idempotent-Replayed") == "true"
    assert len(stripe.PaymentIntent.list().data) == 2
    with pytest.raises(stripe.IdempotencyError) as ei:
        stripe.PaymentIntent.create(
            allowed_payment_method_types=["card"], amount=2100, currency="usd", idempotency_key="k1"
        )
    assert ei.value.http_status == 400 and ei.value.error.type == "idempotency_error"
    # keys are scoped per account: same key on a connected account is a new request
    acct = stripe.Account.create(type="express")
    other = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=2000, currency="usd", idempotency_key="k1", stripe_account=acct.id
    )
    assert other.id != pi.id


def test_expand_on_lists(emulator):
    stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=900, currency="usd", payment_method="pm_card_visa", confirm=True
    )
    lst = stripe.PaymentIntent.list(expand=["data.latest_charge"])
    assert lst.data[0].latest_charge.object == "charge"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.list(expand=["data.amount"])
    assert ei.value.param == "expand"


@pytest.mark.parametrize(
    "token,outcome",
    [
        ("pm_card_visa", "succeeded"),
        ("pm_card_visa_debit", "succeeded"),
        ("pm_card_mastercard", "succeeded"),
        ("pm_card_amex", "succeeded"),
        ("pm_card_bypassPending", "succeeded"),
        ("pm_card_createDispute", "succeeded"),
        ("pm_card_chargeDeclined", "card_declined/generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined/insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "card_declined/lost_card"),
        ("pm_card_chargeDeclinedStolenCard", "card_declined/stolen_card"),
        ("pm_card_chargeDeclinedFraudulent", "card_declined/fraudulent"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card/None"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc/None"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error/None"),
        ("pm_card_authenticationRequired", "requires_action"),
        ("pm_card_threeDSecure2Required", "requires_action"),
    ],
)
def test_every_test_payment_method(emulator, token, outcome):
    try:
        pi = stripe.PaymentIntent.create(
            allowed_payment_method_types=["card"], amount=1000, currency="usd", payment_method=token, confirm=True
        )
        got = pi.status
    except stripe.CardError as e:
        assert e.http_status == 402 and e.error.payment_intent.status == "requires_payment_method"
        got = "%s/%s" % (e.code, e.json_body["error"].get("decline_code"))
    assert got == outcome
