"""The web app and the emulator's Stripe.js in headless Chromium, against a live server, the real
Celery worker and the emulator with its webhooks: what a talker and a listener click through."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import Payment, Refund, StripeCustomer
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts.models import StripeListenerAccount
from subscriptions.models import Subscription, SubscriptionPlan
from web.testing import webhooks_register, worker_wait_idle
from web.tests.browser import screenshot, start_chromium
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"  # the factories' password
WAIT = 30  # seconds a step may take at most (a webhook, its worker, the page's poll)
GUIDE = Path(__file__).with_name("guide.js").read_text()


@pytest.fixture(scope="module")
def driver():
    chromium = start_chromium()
    chromium.set_script_timeout(WAIT)
    yield chromium
    chromium.quit()


@pytest.fixture
def app(driver, live_server, celery_worker, stripe_emulator):
    """The live server wired to the emulator's webhooks; the browser starts signed out on a blank page."""
    webhooks_register(stripe_emulator, live_server.url)
    settings.CONNECT_RETURN_URL = live_server.url + "/connect/return"
    settings.CONNECT_REFRESH_URL = live_server.url + "/connect/refresh"
    driver.get("about:blank")
    yield live_server
    # An event still on its way (a PaymentIntent a test made itself) must not meet the database flush.
    stripe_emulator.flush_webhooks(timeout=WAIT)
    worker_wait_idle()
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])


def wait_for(driver, predicate, timeout=WAIT, message=""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A view re-renders when its data arrives: an element found a moment before may be gone.
    ignored = (StaleElementReferenceException,)
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=ignored).until(predicate, message)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector), message=selector)


def text_of(driver, selector, contains, timeout=WAIT):
    from selenium.webdriver.common.by import By

    def found(d):
        elements = d.find_elements(By.CSS_SELECTOR, selector)
        return elements and contains in elements[0].text and elements[0]

    return wait_for(driver, found, timeout, message=f"{selector!r} containing {contains!r}")


def sign_in(driver, server, user):
    driver.get(server.url + "/")
    form = css(driver, "#signin-form")
    form.find_element("name", "username").send_keys(user.username)
    form.find_element("name", "password").send_keys(PASSWORD)
    form.find_element("css selector", "button[type=submit]").click()
    css(driver, "#who span")


def book(driver, listener, starts_at):
    """Book the listener in the listeners page; returns the booking id from the pay page's URL."""
    driver.execute_script("location.hash = '#/listeners'")
    form = css(driver, f"form.book[data-listener='{listener.username}']")
    local = timezone.localtime(starts_at).strftime("%Y-%m-%dT%H:%M")
    driver.execute_script("arguments[0].value = arguments[1]", form.find_element("name", "scheduled_at"), local)
    form.find_element("css selector", "button[type=submit]").click()
    css(driver, "#card-element input[name=cardnumber]")
    return int(driver.execute_script("return location.hash").rsplit("/", 1)[1])


def type_card(driver, number, expiry="12 / 34", cvc="123", element="#card-element"):
    fields = {"cardnumber": number, "exp-date": expiry, "cvc": cvc}
    for name, value in fields.items():
        field = css(driver, f"{element} input[name='{name}']")
        field.clear()
        field.send_keys(value)


def pay(driver):
    css(driver, "#pay").click()


@pytest.fixture
def people():
    talker = TalkerFactory(email="ada@example.com")
    listener = ListenerFactory(first_name="Lin", last_name="Okafor")
    PackageFactory(name="Twenty minutes", duration_minutes=20)
    return talker, listener


def in_days(days, hour=10):
    return (timezone.now() + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


def test_talker_books_pays_with_4242_and_sees_confirmed(driver, app, people):
    talker, listener = people
    driver.get(app.url + "/")
    css(driver, "#register-form")
    screenshot(driver, "signin")
    sign_in(driver, app, talker)
    driver.execute_script("location.hash = '#/listeners'")
    css(driver, f"form.book[data-listener='{listener.username}']")
    screenshot(driver, "listeners")

    booking_id = book(driver, listener, in_days(2))
    type_card(driver, "4242 4242 4242 4242")
    screenshot(driver, "pay")
    pay(driver)

    text_of(driver, "#booking-status", "confirmed")
    screenshot(driver, "confirmed")
    assert Booking.objects.get(pk=booking_id).status == Booking.Status.CONFIRMED
    assert Payment.objects.get(booking_id=booking_id).status == Payment.Status.SUCCEEDED


def test_3d_secure_card_completes_the_challenge_then_fails_it(driver, app, people):
    talker, listener = people
    sign_in(driver, app, talker)

    completed = book(driver, listener, in_days(3))
    type_card(driver, "4000 0025 0000 3155")
    pay(driver)
    driver.switch_to.frame(css(driver, "iframe[name='__privateStripeFrame3ds']"))
    complete = css(driver, "#test-source-authorize-3ds")
    screenshot(driver, "3ds-challenge")
    complete.click()
    driver.switch_to.default_content()
    text_of(driver, "#booking-status", "confirmed")

    failed = book(driver, listener, in_days(4))
    type_card(driver, "4000 0025 0000 3155")
    pay(driver)
    driver.switch_to.frame(css(driver, "iframe[name='__privateStripeFrame3ds']"))
    css(driver, "#test-source-fail-3ds").click()
    driver.switch_to.default_content()
    text_of(driver, "#card-errors", "We are unable to authenticate your payment method.")

    assert Booking.objects.get(pk=completed).status == Booking.Status.CONFIRMED
    assert Booking.objects.get(pk=failed).status == Booking.Status.PENDING
    assert css(driver, "#pay").is_enabled()


def test_declined_card_shows_the_decline_and_the_booking_stays_payable(driver, app, people):
    talker, listener = people
    sign_in(driver, app, talker)
    booking_id = book(driver, listener, in_days(5))

    type_card(driver, "4000 0000 0000 0002")
    pay(driver)
    text_of(driver, "#card-errors", "Your card was declined.")
    screenshot(driver, "declined")
    assert Booking.objects.get(pk=booking_id).status == Booking.Status.PENDING
    assert text_of(driver, "#booking-status", "pending")

    type_card(driver, "4242 4242 4242 4242")
    pay(driver)
    text_of(driver, "#booking-status", "confirmed")


def test_listener_onboards_with_stripe_and_sees_payouts_enabled(driver, app, people):
    _, listener = people
    sign_in(driver, app, listener)
    text_of(driver, "#connect-state", "not set up")

    css(driver, "#onboard").click()
    wait_for(driver, lambda d: len(d.window_handles) == 2, message="the onboarding tab")
    app_tab, stripe_tab = driver.window_handles
    driver.switch_to.window(stripe_tab)
    text_of(driver, "#connect-return", "You can close this tab")
    assert driver.current_url == app.url + "/connect/return"
    screenshot(driver, "connect-return")
    driver.close()
    driver.switch_to.window(app_tab)

    text_of(driver, "#connect-state", "Payouts enabled")
    screenshot(driver, "payouts")
    assert StripeListenerAccount.objects.get(listener=listener).payouts_enabled
    # the onboarded listener gets a link into their Express dashboard (a fresh login link)
    dashboard = css(driver, "#express-dashboard")
    assert "/_emulator/express_dashboard/" in dashboard.get_attribute("href")


def test_cancel_shows_the_refund_first_then_refunds_it(driver, app, people):
    talker, listener = people
    sign_in(driver, app, talker)
    booking_id = book(driver, listener, in_days(6))
    type_card(driver, "4242 4242 4242 4242")
    pay(driver)
    text_of(driver, "#booking-status", "confirmed")

    driver.execute_script("location.hash = '#/bookings'")
    css(driver, f"tr[data-booking='{booking_id}'] .actions button").click()
    text_of(driver, "#cancel-quote-text", "You get $30.00 back")
    screenshot(driver, "cancel")
    assert Booking.objects.get(pk=booking_id).status == Booking.Status.CONFIRMED  # only a quote so far
    css(driver, "#confirm-cancel").click()

    text_of(driver, "#refund-status", f"Booking #{booking_id} is refunded: $30.00")
    screenshot(driver, "refunded")
    refund = Refund.objects.get(payment__booking_id=booking_id)
    assert (refund.amount, refund.status) == (3000, Refund.Status.SUCCEEDED)
    assert Payment.objects.get(booking_id=booking_id).amount_refunded == 3000

    driver.execute_script("location.hash = '#/payments'")
    text_of(driver, "#payments tbody", "$30.00")
    cells = [td.text for td in css(driver, "#payments tbody tr").find_elements("css selector", "td")]
    assert cells[:3] == [f"#{booking_id}", "$30.00", "$30.00"]  # booking, amount, refunded
    screenshot(driver, "payments")


def test_the_old_guides_create_booking_and_confirm_payment_run_as_written(driver, app, people):
    talker, listener = people
    package = PackageFactory(name="Forty minutes", duration_minutes=40, price="50.00")
    driver.get(app.url + "/")
    css(driver, "#signin-form")
    # A page of the guide's: a container for the card element, the guide's functions, and loadStripe
    # as @stripe/stripe-js does it when the page already has Stripe.js (it reuses window.Stripe).
    driver.execute_script(
        "document.getElementById('main').insertAdjacentHTML('beforeend', '<div id=\"guide-card\"></div>');"
        "window.loadStripe = (key) => Promise.resolve(window.Stripe ? window.Stripe(key) : null);"
        "const guide = document.createElement('script'); guide.textContent = arguments[0]"
        " + ';window.guide = {initStripe, createBooking, confirmPayment, setToken: (t) => { token = t; }};';"
        "document.head.appendChild(guide);",
        GUIDE,
    )
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "guide.initStripe().then((stripe) => {"
        "  window.cardElement = stripe.elements().create('card'); cardElement.mount('#guide-card'); done(); });"
    )
    for name, value in {"cardnumber": "4242424242424242", "exp-date": "1234", "cvc": "123", "postal": "10115"}.items():
        css(driver, f"#guide-card input[name='{name}']").send_keys(value)

    result = driver.execute_async_script(
        "const [username, password, listenerId, packageId, when, done] = arguments;"
        "fetch('/api/auth/token/', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        "  body: JSON.stringify({username, password})}).then((r) => r.json()).then(async ({access}) => {"
        "  guide.setToken(access);"
        "  const created = await guide.createBooking(listenerId, packageId, when, 'from the guide');"
        "  const paid = await guide.confirmPayment(created.payment.client_secret, cardElement, 'ada@example.com');"
        "  done({booking: created.booking.id, success: paid.success,"
        "        status: paid.paymentIntent && paid.paymentIntent.status, error: paid.error || null});"
        "}).catch((e) => done({error: String(e)}));",
        talker.username,
        PASSWORD,
        listener.pk,
        package.pk,
        in_days(7).isoformat(),
    )

    assert result["error"] is None and result["success"] is True and result["status"] == "succeeded"
    booking = Booking.objects.get(pk=result["booking"])
    wait_for(driver, lambda _: Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED)
    assert booking.total_amount == 5000


def test_listener_starts_and_completes_a_paid_session_and_sees_the_earning(driver, app, people):
    talker, listener = people
    sign_in(driver, app, talker)
    booking_id = book(driver, listener, in_days(1, hour=9))
    type_card(driver, "4242 4242 4242 4242")
    pay(driver)
    text_of(driver, "#booking-status", "confirmed")
    css(driver, "#who button").click()  # sign out

    # The session's time comes (a session starts only around scheduled_at, issue 11)
    now = timezone.now()
    Booking.objects.filter(pk=booking_id).update(scheduled_at=now, ends_at=now + timedelta(minutes=20))
    sign_in(driver, app, listener)
    driver.execute_script("location.hash = '#/bookings'")
    row = f"tr[data-booking='{booking_id}']"
    text_of(driver, f"{row} .actions", "Start session").find_element("xpath", ".//button[.='Start session']").click()
    text_of(driver, f"{row} .status", "in_progress")
    # ...and it runs its 20 minutes before it can be completed.
    Booking.objects.filter(pk=booking_id).update(started_at=timezone.now() - timedelta(minutes=20))
    label = "Complete session"
    text_of(driver, f"{row} .actions", label).find_element("xpath", f".//button[.='{label}']").click()
    text_of(driver, f"{row} .status", "completed")
    screenshot(driver, "sessions")

    driver.execute_script("location.hash = '#/account'")
    text_of(driver, "#total-earned", "$27.00")


def test_stand_in_card_element_events_and_validation(driver, app):
    driver.get(app.url + "/")
    css(driver, "#signin-form")
    driver.execute_script(
        "document.getElementById('main').insertAdjacentHTML('beforeend', '<div id=\"probe\"></div>');"
        "window.events = []; window.probeStripe = Stripe(arguments[0]);"
        "window.probe = probeStripe.elements().create('card', {hidePostalCode: true});"
        "['change', 'focus', 'blur', 'ready'].forEach((t) => probe.on(t, (e) => events.push([t, e])));"
        "probe.mount('#probe');",
        settings.STRIPE_PUBLISHABLE_KEY,
    )
    number = css(driver, "#probe input[name=cardnumber]")
    number.send_keys("4242 4242 4242 4241")
    last_change = "return events.filter((e) => e[0] === 'change').pop()[1]"
    invalid = driver.execute_script(last_change)
    assert invalid["complete"] is False
    invalid_number = {"type": "validation_error", "code": "invalid_number", "message": "Your card number is invalid."}
    assert invalid["error"] == invalid_number
    incomplete = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "probeStripe.confirmCardPayment('pi_123_secret_456', {payment_method: {card: probe}}).then(done);"
    )
    assert incomplete == {"error": invalid_number}

    number.clear()
    number.send_keys("4242424242424242")
    css(driver, "#probe input[name=exp-date]").send_keys("1234")
    css(driver, "#probe input[name=cvc]").send_keys("123")
    complete = driver.execute_script(last_change)
    assert complete["complete"] is True and "error" not in complete and complete["brand"] == "visa"
    assert {e[0] for e in driver.execute_script("return events")} == {"ready", "focus", "blur", "change"}
    assert "StripeElement--complete" in css(driver, "#probe").get_attribute("class")


def test_stand_in_handle_card_action_and_retrieve_payment_intent(driver, app, stripe_emulator):
    client = stripe_emulator.stripe_client()
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],  # a server-side confirmation: no redirect methods
            "payment_method": "pm_card_threeDSecure2Required",
            "confirm": True,
        }
    )
    assert intent.status == "requires_action"
    driver.get(app.url + "/")
    css(driver, "#signin-form")
    driver.execute_script(
        "window.probeStripe = Stripe(arguments[0]);"
        "window.actionResult = null; probeStripe.handleCardAction(arguments[1]).then((r) => { actionResult = r; });",
        settings.STRIPE_PUBLISHABLE_KEY,
        intent.client_secret,
    )
    driver.switch_to.frame(css(driver, "iframe[name='__privateStripeFrame3ds']"))
    css(driver, "#test-source-authorize-3ds").click()
    driver.switch_to.default_content()
    handled = wait_for(driver, lambda d: d.execute_script("return actionResult"), message="handleCardAction")

    retrieved = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];probeStripe.retrievePaymentIntent(arguments[0]).then(done);",
        intent.client_secret,
    )
    unknown = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];probeStripe.retrievePaymentIntent(arguments[0]).then(done);",
        intent.id + "_secret_wrong",
    )

    assert handled["paymentIntent"]["status"] == "succeeded"
    assert retrieved["paymentIntent"]["id"] == intent.id and retrieved["paymentIntent"]["status"] == "succeeded"
    assert "client_secret" in retrieved["paymentIntent"] and "customer" not in retrieved["paymentIntent"]
    assert unknown["error"]["code"] == "resource_missing"


def test_stand_in_follows_a_redirect_to_url_when_a_return_url_is_given(driver, app, stripe_emulator):
    client = stripe_emulator.stripe_client()
    intent = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    driver.get(app.url + "/")
    css(driver, "#signin-form")
    driver.execute_script(
        "Stripe(arguments[0]).confirmCardPayment(arguments[1],"
        " {payment_method: 'pm_card_threeDSecure2Required', return_url: arguments[2]});",
        settings.STRIPE_PUBLISHABLE_KEY,
        intent.client_secret,
        app.url + "/?back=1",
    )

    # The emulator's 3-D Secure page completes the challenge and sends the browser back, as Stripe does.
    wait_for(driver, lambda d: "back=1" in d.current_url, message="back on the return_url")
    assert f"payment_intent={intent.id}" in driver.current_url
    assert "payment_intent_client_secret=" in driver.current_url
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


# ---------------------------------------------------------------- subscriptions: a standing slot


@pytest.fixture
def weekly_plan():
    package = PackageFactory(name="Forty minutes", duration_minutes=40, price=Decimal("50.00"))
    return SubscriptionPlan.objects.create(package=package, interval=SubscriptionPlan.Interval.WEEK)


def subscribe(driver, listener, plan, starts_at):
    """Subscribe in the standing-slot page; returns the subscription id from its pay page's URL."""
    from selenium.webdriver.support.ui import Select

    driver.execute_script("location.hash = '#/subscribe'")
    form = css(driver, "#subscribe-form")
    Select(form.find_element("name", "listener")).select_by_visible_text(listener.get_full_name())
    Select(form.find_element("name", "plan")).select_by_value(str(plan.pk))
    local = timezone.localtime(starts_at).strftime("%Y-%m-%dT%H:%M")
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
        form.find_element("name", "first_session_at"),
        local,
    )
    text_of(driver, "#slot-summary", f"Every {timezone.localtime(starts_at):%A} at")
    return form


def submit_subscription(driver, form):
    form.find_element("css selector", "button[type=submit]").click()
    css(driver, "#card-element input[name=cardnumber]")
    return int(driver.execute_script("return location.hash").rsplit("/", 1)[1])


def subscription_row(driver, sub_id):
    return f"#subscriptions tr[data-subscription='{sub_id}']"


def test_talker_subscribes_to_a_standing_slot_pays_with_4242_and_sees_it_active(driver, app, people, weekly_plan):
    talker, listener = people
    first = in_days(2, hour=18)
    sign_in(driver, app, talker)
    form = subscribe(driver, listener, weekly_plan, first)
    assert "$50.00 billed each week" in css(driver, "#slot-summary").text
    screenshot(driver, "subscribe")

    sub_id = submit_subscription(driver, form)
    assert css(driver, "#subscription-status").text == "incomplete"
    assert css(driver, "#pay").text == "Pay $50.00"
    type_card(driver, "4242 4242 4242 4242")
    screenshot(driver, "subscription-pay")
    pay(driver)

    text_of(driver, "#subscription-status", "active")
    text_of(driver, "#subscription-sessions tbody tr:first-child .status", "confirmed")
    screenshot(driver, "subscription-active")
    sub = Subscription.objects.get(pk=sub_id)
    assert sub.status == Subscription.Status.ACTIVE
    assert (sub.talker, sub.listener, sub.plan) == (talker, listener, weekly_plan)
    sessions = list(Booking.objects.filter(subscription_session__subscription=sub).order_by("scheduled_at"))
    assert sessions[0].scheduled_at == first and sessions[0].status == Booking.Status.CONFIRMED
    assert (sessions[0].total_amount, sessions[0].app_fee, sessions[0].listener_amount) == (5000, 500, 4500)
    assert [b.status for b in sessions[1:]] == [Booking.Status.RESERVED] * (len(sessions) - 1)

    driver.execute_script("location.hash = '#/subscriptions'")
    row = subscription_row(driver, sub_id)
    text_of(driver, f"{row} .status", "active")
    cells = [td.text for td in css(driver, row).find_elements("css selector", "td")]
    assert cells[1] == "Lin Okafor" and cells[2].startswith("Forty minutes, weekly")
    assert cells[3] == f"every {first:%A}, {first:%H:%M} UTC"


def test_talker_pauses_resumes_and_cancels_a_3d_secure_subscription_seeing_the_refund_first(
    driver, app, people, weekly_plan
):
    talker, listener = people
    sign_in(driver, app, talker)
    sub_id = submit_subscription(driver, subscribe(driver, listener, weekly_plan, in_days(3, hour=17)))
    type_card(driver, "4000 0025 0000 3155")
    pay(driver)
    driver.switch_to.frame(css(driver, "iframe[name='__privateStripeFrame3ds']"))
    css(driver, "#test-source-authorize-3ds").click()
    driver.switch_to.default_content()
    text_of(driver, "#subscription-status", "active")

    driver.execute_script("location.hash = '#/subscriptions'")
    row = subscription_row(driver, sub_id)
    css(driver, f"{row} button[data-action='pause']").click()
    text_of(driver, "#subscription-result", f"Subscription #{sub_id} is paused")
    text_of(driver, f"{row} .status", "paused")
    assert Subscription.objects.get(pk=sub_id).status == Subscription.Status.PAUSED
    css(driver, f"{row} button[data-action='resume']").click()
    text_of(driver, "#subscription-result", f"Subscription #{sub_id} is active again")
    text_of(driver, f"{row} .status", "active")

    css(driver, f"{row} button[data-action='cancel-at-period-end']").click()
    text_of(driver, "#subscription-quote-text", "The session already paid for stays booked")
    css(driver, "#confirm-subscription-cancel").click()
    text_of(driver, "#subscription-result", f"Subscription #{sub_id} ends on")
    text_of(driver, f"{row} .status", "active, ends")
    assert Subscription.objects.get(pk=sub_id).cancel_at_period_end
    assert not driver.find_elements("css selector", f"{row} button[data-action='pause']")  # it ends: no pause

    css(driver, f"{row} button[data-action='cancel-now']").click()
    text_of(driver, "#subscription-quote-text", "you get $50.00 back (cancelled early enough: everything back)")
    screenshot(driver, "subscription-cancel")
    assert Subscription.objects.get(pk=sub_id).status == Subscription.Status.ACTIVE  # only a quote so far
    css(driver, "#confirm-subscription-cancel").click()
    text_of(driver, "#subscription-result", "and its session is refunded: $50.00")
    text_of(driver, f"{row} .status", "canceled")
    assert not css(driver, row).find_elements("css selector", ".actions button")

    sub = Subscription.objects.get(pk=sub_id)
    assert sub.status == Subscription.Status.CANCELED
    refund = Refund.objects.get(payment__booking__subscription_session__subscription=sub)
    assert (refund.amount, refund.status) == (5000, Refund.Status.SUCCEEDED)
    assert not Booking.objects.filter(subscription_session__subscription=sub, status=Booking.Status.RESERVED).exists()


def complete_3ds(driver):
    driver.switch_to.frame(css(driver, "iframe[name='__privateStripeFrame3ds']"))
    css(driver, "#test-source-authorize-3ds").click()
    driver.switch_to.default_content()


def test_a_renewal_asking_for_3d_secure_is_authenticated_from_the_subscription_page(
    driver, app, people, weekly_plan, stripe_emulator
):
    # given a talker whose Stripe customer lives on a test clock, so that advancing it renews
    talker, listener = people
    client = stripe_emulator.stripe_client()
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    customer = client.v1.customers.create(params={"email": talker.email, "test_clock": clock.id})
    StripeCustomer.objects.create(user=talker, stripe_customer_id=customer.id)
    # subscribed with a card that asks for 3-D Secure on every payment
    sign_in(driver, app, talker)
    sub_id = submit_subscription(driver, subscribe(driver, listener, weekly_plan, in_days(2, hour=16)))
    type_card(driver, "4000 0027 6000 3184")
    pay(driver)
    complete_3ds(driver)
    text_of(driver, "#subscription-status", "active")

    # when the week is over, the renewal asks for authentication
    week = 7 * 86400
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": clock.frozen_time + week + 3660})
    wait_for(driver, lambda _: Subscription.objects.get(pk=sub_id).status == Subscription.Status.PAST_DUE)
    driver.execute_script("location.hash = '#/subscriptions'")
    row = subscription_row(driver, sub_id)
    text_of(driver, f"{row} .status", "past_due")
    css(driver, f"{row} a.button").click()
    authenticate = css(driver, "#authenticate")
    screenshot(driver, "subscription-renewal")
    authenticate.click()
    complete_3ds(driver)

    # then the subscription is active again with the second period's session confirmed
    text_of(driver, "#subscription-status", "active")
    confirmed = "#subscription-sessions tbody tr:nth-child(2) .status"
    text_of(driver, confirmed, "confirmed")
    sub = Subscription.objects.get(pk=sub_id)
    assert sub.status == Subscription.Status.ACTIVE
    paid = Booking.objects.filter(subscription_session__subscription=sub, status=Booking.Status.CONFIRMED)
    assert paid.count() == 2


def test_stand_in_confirm_card_setup_saves_the_card_for_off_session_payments(driver, app, stripe_emulator):
    client = stripe_emulator.stripe_client()
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    intent = client.v1.setup_intents.create(params={"customer": customer.id, "usage": "off_session"})
    driver.get(app.url + "/")
    css(driver, "#signin-form")
    driver.execute_script(
        "document.getElementById('main').insertAdjacentHTML('beforeend', '<div id=\"probe\"></div>');"
        "window.probeStripe = Stripe(arguments[0]);"
        "window.probe = probeStripe.elements().create('card'); probe.mount('#probe');"
        "window.setup = (secret) => probeStripe.confirmCardSetup(secret,"
        "  {payment_method: {card: probe, billing_details: {name: 'Ada Lovelace'}}});",
        settings.STRIPE_PUBLISHABLE_KEY,
    )
    confirm = "const done = arguments[arguments.length - 1]; setup(arguments[0]).then(done);"
    incomplete = driver.execute_async_script(confirm, intent.client_secret)
    incomplete_number = {
        "type": "validation_error",
        "code": "incomplete_number",
        "message": "Your card number is incomplete.",
    }
    assert incomplete == {"error": incomplete_number}
    type_card(driver, "4242 4242 4242 4242", element="#probe")
    css(driver, "#probe input[name=postal]").send_keys("10115")

    saved = driver.execute_async_script(confirm, intent.client_secret)
    again = driver.execute_async_script(confirm, intent.client_secret)
    wrong = driver.execute_async_script(confirm, intent.id + "_secret_wrong")
    retrieved = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; probeStripe.retrieveSetupIntent(arguments[0]).then(done);",
        intent.client_secret,
    )
    not_a_setup = driver.execute_script(
        "try { probeStripe.confirmCardSetup('pi_123_secret_456', {}); return null; } catch (e) { return e.name; }"
    )

    assert set(saved) == {"setupIntent"} and saved["setupIntent"]["status"] == "succeeded"
    assert saved["setupIntent"]["id"] == intent.id
    method = client.v1.payment_methods.retrieve(saved["setupIntent"]["payment_method"])
    assert (method.customer, method.card.last4, method.billing_details.name) == (customer.id, "4242", "Ada Lovelace")
    assert method.billing_details.address.postal_code == "10115"
    assert set(again) == {"error"} and again["error"]["code"] == "setup_intent_unexpected_state"
    assert set(wrong) == {"error"} and wrong["error"]["code"] == "resource_missing"
    assert retrieved["setupIntent"]["status"] == "succeeded"
    assert not_a_setup == "IntegrationError"
    # a 3-D Secure card sets up at once: the emulator asks for authentication at the charge, if at all
    second = client.v1.setup_intents.create(params={"customer": customer.id, "usage": "off_session"})
    driver.execute_script("probe.clear()")
    type_card(driver, "4000 0025 0000 3155", element="#probe")
    css(driver, "#probe input[name=postal]").send_keys("10115")
    three_d_secure = driver.execute_async_script(confirm, second.client_secret)
    assert three_d_secure["setupIntent"]["status"] == "succeeded"
    assert not driver.find_elements("css selector", "iframe[name='__privateStripeFrame3ds']")
    # the saved card pays later without the talker (what a subscription renewal does)
    charge = {"amount": 3000, "currency": "usd", "customer": customer.id, "payment_method": method.id}
    charge["allowed_payment_method_types"] = ["card"]  # confirmed on the server: no redirect methods
    renewal = client.v1.payment_intents.create(params={**charge, "off_session": True, "confirm": True})
    assert renewal.status == "succeeded"
