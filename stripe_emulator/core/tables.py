"""Constants of the emulated Stripe: API version, default config, test cards, currencies, id prefixes."""

import string

API_VERSION = "2026-10-28.endive"
# Versions whose behaviour the emulator follows (by the date before the dot; a request's Stripe-Version
# header picks the behaviour, the shape of every answer stays API_VERSION's):
# a PaymentIntent without payment-method settings gets automatic payment methods, redirects allowed
AUTOMATIC_PAYMENT_METHODS_SINCE = "2023-08-16"
# payment_method_types is no longer writable on PaymentIntents (allowed_payment_method_types replaces it)
PAYMENT_METHOD_TYPES_REMOVED_IN = "2026-09-30"

DEFAULT_CONFIG = {
    "time_scale": 1.0,
    # Like Stripe: a charge's funds are pending until `funds_delay` seconds of emulated time have passed
    # (US test accounts: 2 days), see state.StateMixin._release_due_funds and /_emulator/clock/advance.
    "funds_pending": True,
    "funds_delay": 2 * 86400.0,
    "chaos_duplicate": 0.0,
    "chaos_reorder": 0.0,
    "chaos_delay": 0.0,
    "chaos_max_delay": 2.0,
    "chaos_reorder_release": 0.5,
    "webhook_max_attempts": 8,
    "webhook_retry_base": 10.0,  # seconds before the 2nd attempt (doubles), times time_scale
    "webhook_timeout": 10.0,
    "dispute_delay": 2.0,  # seconds (times time_scale) before a 0259 card's dispute opens
    "payout_delay": 2.0,  # seconds (times time_scale) before a payout is paid/failed
    # seconds (times time_scale) before a captured charge gets its balance_transaction (and a destination
    # charge its transfer), announced by charge.updated: Stripe captures asynchronously
    "capture_delay": 0.5,
    "hang_seconds": 30.0,
    "quiet": False,
    "seed": None,
}

ALNUM = string.ascii_letters + string.digits

# minimum charge amounts (smallest currency unit)
CURRENCY_MIN = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "cad": 50,
    "aud": 50,
    "jpy": 50,
    "chf": 50,
    "nzd": 50,
    "sek": 300,
    "nok": 300,
    "dkk": 250,
    "hkd": 400,
    "sgd": 50,
    "mxn": 1000,
    "inr": 50,
    "brl": 50,
    "pln": 200,
    "czk": 1500,
    "huf": 17500,
    "ron": 200,
    "bgn": 100,
    "thb": 1000,
    "myr": 200,
    "krw": 100,
    "aed": 200,
    "zar": 800,
    "ils": 200,
}
ZERO_DECIMAL = {"jpy", "krw"}
COUNTRY_CURRENCY = {
    "US": "usd",
    "GB": "gbp",
    "CA": "cad",
    "AU": "aud",
    "JP": "jpy",
    "FR": "eur",
    "DE": "eur",
    "ES": "eur",
    "IT": "eur",
    "NL": "eur",
    "IE": "eur",
    "BE": "eur",
    "AT": "eur",
    "FI": "eur",
    "PT": "eur",
    "CH": "chf",
    "NZ": "nzd",
    "SE": "sek",
    "NO": "nok",
    "DK": "dkk",
    "SG": "sgd",
    "HK": "hkd",
    "MX": "mxn",
    "IN": "inr",
    "BR": "brl",
    "PL": "pln",
}

# card number -> (brand, behaviour, decline_code or None, funding)
CARDS = {
    "4242424242424242": ("visa", "success", None, "credit"),
    "4000056655665556": ("visa", "success", None, "debit"),
    "5555555555554444": ("mastercard", "success", None, "credit"),
    "2223003122003222": ("mastercard", "success", None, "credit"),
    "378282246310005": ("amex", "success", None, "credit"),
    "4000000000000077": ("visa", "success_available", None, "credit"),
    "4000000000000002": ("visa", "decline", "generic_decline", "credit"),
    "4000000000009995": ("visa", "decline", "insufficient_funds", "credit"),
    "4000000000009987": ("visa", "decline", "lost_card", "credit"),
    "4000000000009979": ("visa", "decline", "stolen_card", "credit"),
    "4000000000000069": ("visa", "decline", "expired_card", "credit"),
    "4000000000000127": ("visa", "decline", "incorrect_cvc", "credit"),
    "4000000000000119": ("visa", "decline", "processing_error", "credit"),
    "4100000000000019": ("visa", "decline", "fraudulent", "credit"),
    "4000002500003155": ("visa", "3ds", None, "credit"),
    "4000002760003184": ("visa", "3ds", None, "credit"),
    "4000000000003220": ("visa", "3ds", None, "credit"),
    "4000000000000259": ("visa", "dispute", None, "credit"),
    "4000000000001976": ("visa", "inquiry", None, "credit"),
    "4000000000000341": ("visa", "decline", "generic_decline", "credit"),  # attaches, then every charge fails
}
PM_TOKENS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_bypassPending": "4000000000000077",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequiredOnSetup": "4000002760003184",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_chargeCustomerFail": "4000000000000341",
}
CARD_TOKENS = {
    "tok_visa": "4242424242424242",
    "tok_mastercard": "5555555555554444",
    "tok_amex": "378282246310005",
    "tok_chargeDeclined": "4000000000000002",
    "tok_chargeDeclinedInsufficientFunds": "4000000000009995",
    "tok_createDispute": "4000000000000259",
    "tok_createDisputeInquiry": "4000000000001976",
    "tok_bypassPending": "4000000000000077",
}

DECLINES = {
    "generic_decline": ("card_declined", "Your card was declined."),
    "insufficient_funds": ("card_declined", "Your card has insufficient funds."),
    "lost_card": ("card_declined", "Your card was declined."),
    "stolen_card": ("card_declined", "Your card was declined."),
    "fraudulent": ("card_declined", "Your card was declined."),
    "expired_card": ("expired_card", "Your card has expired."),
    "incorrect_cvc": ("incorrect_cvc", "Your card's security code is incorrect."),
    "processing_error": (
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}

EVIDENCE_FIELDS = [
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
]

INITIAL_REQUIREMENTS = [
    "business_profile.mcc",
    "business_profile.url",
    "external_account",
    "individual.dob.day",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]

PREFIX_TYPE = {
    "pi": "payment_intent",
    "ch": "charge",
    "re": "refund",
    "cus": "customer",
    "pm": "payment_method",
    "acct": "account",
    "tr": "transfer",
    "trr": "transfer_reversal",
    "dp": "dispute",
    "evt": "event",
    "po": "payout",
    "we": "webhook_endpoint",
    "txn": "balance_transaction",
}
