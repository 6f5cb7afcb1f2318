"""The web app and the emulator's Stripe.js in headless Chromium, against a live server, the real
Celery worker and the emulator with its webhooks: what a talker and a listener click through."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import Payment, Refund
from booking.models import Booking
from booking.tests.factories import PackageFactory
from payouts.models import StripeListenerAccount
from web.testing import webhooks_register
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


def type_card(driver, number, expiry="12 / 34", cvc="123"):
    fields = {"cardnumber": number, "exp-date": expiry, "cvc": cvc}
    for name, value in fields.items():
        field = css(driver, f"#card-element input[name='{name}']")
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
