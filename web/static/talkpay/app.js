/*
 * Talkpay's web app: plain JavaScript, no build step. The REST API under /api/ is its only backend;
 * the JWT pair lives in memory only (a reload signs you out). Routes are hashes (#/listeners,
 * #/pay/7, ...) plus the two paths Stripe Connect sends a listener back to (/connect/return, /connect/refresh).
 */
(function () {
  "use strict";

  var state = { access: null, refresh: null, me: null, config: null, stripe: null, packages: [], listeners: {} };
  var main = document.getElementById("main");
  var channel = "BroadcastChannel" in window ? new BroadcastChannel("talkpay") : null;

  // ------------------------------------------------------------------ DOM

  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }

  function show() {
    main.textContent = "";
    for (var i = 0; i < arguments.length; i++) append(main, arguments[i]);
  }

  function flash(text) {
    document.getElementById("flash").textContent = text || "";
  }

  function money(amount, currency) {
    return "$" + amount + (currency && currency !== "usd" ? " " + currency.toUpperCase() : "");
  }

  function when(iso) {
    return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // ------------------------------------------------------------------ API

  function ApiError(status, body) {
    var error = (body && body.error) || {};
    this.status = status;
    this.message = error.message || "The server answered " + status + ".";
    this.fields = error.fields || {};
  }

  var routeSeq = 0; // bumped on every navigation

  function api(method, path, body, headers, retried) {
    var seq = routeSeq;
    var init = { method: method, headers: Object.assign({ Accept: "application/json" }, headers || {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (state.access) init.headers.Authorization = "Bearer " + state.access;
    return fetch("/api" + path, init).then(function (response) {
      if (response.status === 401 && state.refresh && !retried) {
        return refreshToken().then(function () { return api(method, path, body, headers, true); });
      }
      return response.text().then(function (text) {
        // A read for a page the user has left never settles, so the old view cannot paint over the new one.
        if (method === "GET" && seq !== routeSeq) return new Promise(function () {});
        var data = text ? JSON.parse(text) : null;
        if (!response.ok) throw new ApiError(response.status, data);
        return data;
      });
    });
  }

  function refreshToken() {
    var refresh = state.refresh;
    state.refresh = null;
    state.access = null;
    return api("POST", "/auth/token/refresh/", { refresh: refresh }).then(function (pair) {
      state.access = pair.access;
      state.refresh = pair.refresh || refresh;
    });
  }

  function idempotencyKey() {
    return { "Idempotency-Key": "web-" + Date.now() + "-" + Math.random().toString(36).slice(2) };
  }

  function results(page) {
    return Array.isArray(page) ? page : page.results;
  }

  function signIn(username, password) {
    return api("POST", "/auth/token/", { username: username, password: password }).then(function (pair) {
      state.access = pair.access;
      state.refresh = pair.refresh;
      return api("GET", "/auth/me/");
    }).then(function (me) {
      state.me = me;
      renderChrome();
    });
  }

  function signOut() {
    state.access = state.refresh = state.me = null;
    renderChrome();
    location.hash = "#/signin";
  }

  // ------------------------------------------------------------------ chrome

  function renderChrome() {
    var nav = document.getElementById("nav");
    var who = document.getElementById("who");
    nav.textContent = who.textContent = "";
    if (!state.me) return;
    var links = state.me.role === "talker"
      ? [["#/listeners", "Book a session"], ["#/subscribe", "Standing slot"], ["#/bookings", "My bookings"],
        ["#/subscriptions", "My subscriptions"], ["#/payments", "My payments"]]
      : [["#/account", "Payouts"], ["#/bookings", "My sessions"], ["#/subscriptions", "Subscriptions"]];
    links.forEach(function (l) { append(nav, h("a", { href: l[0] }, l[1])); });
    append(who, [
      h("span", {}, state.me.username + " (" + state.me.role + ")"),
      h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
    ]);
  }

  function fieldErrors(error) {
    return Object.keys(error.fields || {}).map(function (f) { return f + ": " + error.fields[f].join(" "); }).join(" ");
  }

  function errorText(error) {
    var extra = fieldErrors(error);
    return error.message + (extra && extra !== "non_field_errors: " + error.message ? " (" + extra + ")" : "");
  }

  // ------------------------------------------------------------------ sign in / register

  function viewSignIn() {
    var signInError = h("p", { class: "error", role: "alert", id: "signin-error" });
    var registerError = h("p", { class: "error", role: "alert", id: "register-error" });
    var signInForm = h(
      "form", { id: "signin-form", "aria-labelledby": "signin-title" },
      h("h2", { id: "signin-title" }, "Sign in"),
      h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true })),
      h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
      h("button", { type: "submit" }, "Sign in"),
      signInError,
    );
    signInForm.addEventListener("submit", function (e) {
      e.preventDefault();
      signInError.textContent = "";
      signIn(signInForm.username.value, signInForm.password.value).then(home, function (err) {
        signInError.textContent = err.status === 401 ? "Wrong username or password." : errorText(err);
      });
    });
    var registerForm = h(
      "form", { id: "register-form", "aria-labelledby": "register-title" },
      h("h2", { id: "register-title" }, "Create an account"),
      h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true })),
      h("label", {}, "Email", h("input", { name: "email", type: "email", autocomplete: "email", required: true })),
      h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true })),
      h("fieldset", {},
        h("legend", {}, "I want to"),
        h("label", { class: "inline" }, h("input", { type: "radio", name: "role", value: "talker", checked: true }), "book sessions (talker)"),
        h("label", { class: "inline" }, h("input", { type: "radio", name: "role", value: "listener" }), "give sessions (listener)"),
      ),
      h("button", { type: "submit" }, "Create account"),
      registerError,
    );
    registerForm.addEventListener("submit", function (e) {
      e.preventDefault();
      registerError.textContent = "";
      var f = registerForm;
      api("POST", "/auth/register/", {
        username: f.username.value, email: f.email.value, password: f.password.value, role: f.role.value,
      }).then(function () { return signIn(f.username.value, f.password.value); }).then(home, function (err) {
        registerError.textContent = errorText(err);
      });
    });
    show(h("div", { class: "columns" }, signInForm, registerForm));
  }

  function home() {
    var target = state.me.role === "talker" ? "#/listeners" : "#/account";
    if (location.hash === target) route();
    else location.hash = target; // hashchange routes
  }

  // ------------------------------------------------------------------ talker: listeners and booking

  function nextSlot(days) {
    var d = new Date(Date.now() + days * 86400000);
    d.setMinutes(0, 0, 0);
    d.setHours(d.getHours() + 1);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":00";
  }

  function viewListeners() {
    return Promise.all([api("GET", "/payment/listeners/"), api("GET", "/payment/packages/")]).then(function (r) {
      var listeners = results(r[0]);
      state.packages = results(r[1]);
      listeners.forEach(function (l) { state.listeners[l.id] = l; });
      if (!listeners.length) return show(h("h1", {}, "Book a session"), h("p", {}, "No listener takes bookings right now."));
      show(
        h("h1", {}, "Book a session"),
        h("ul", { class: "cards", id: "listeners" }, listeners.map(listenerCard)),
      );
    });
  }

  function listenerName(l) {
    return [l.first_name, l.last_name].filter(Boolean).join(" ") || l.username;
  }

  function listenerCard(l) {
    var error = h("p", { class: "error", role: "alert" });
    var form = h(
      "form", { class: "book", "data-listener": l.username, "aria-label": "Book " + listenerName(l) },
      h("label", {}, "Package",
        h("select", { name: "package" }, state.packages.map(function (p) {
          return h("option", { value: p.id }, p.name + " · " + p.duration_minutes + " min · " + money(p.price));
        })),
      ),
      h("label", {}, "Start", h("input", { name: "scheduled_at", type: "datetime-local", value: nextSlot(1), required: true })),
      h("label", {}, "Notes", h("input", { name: "notes", maxlength: 2000 })),
      h("button", { type: "submit" }, "Book and pay"),
      error,
    );
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      error.textContent = "";
      form.querySelector("button").disabled = true;
      var body = {
        listener_id: l.id,
        package_id: +form.package.value,
        scheduled_at: new Date(form.scheduled_at.value).toISOString(),
        notes: form.notes.value,
      };
      api("POST", "/payment/bookings/create_booking/", body, idempotencyKey())
        .then(function (created) { location.hash = "#/pay/" + created.booking.id; }, function (err) {
          error.textContent = errorText(err);
          form.querySelector("button").disabled = false;
        });
    });
    var busy = l.busy_slots.length
      ? h("ul", { class: "busy", "aria-label": "Busy times" }, l.busy_slots.map(function (s) {
          return h("li", {}, when(s.starts_at) + " – " + new Date(s.ends_at).toLocaleTimeString(undefined, { timeStyle: "short" }));
        }))
      : h("p", { class: "muted" }, "No bookings yet: every time is free.");
    return h("li", { class: "card" }, h("h2", {}, listenerName(l)), h("h3", {}, "Busy"), busy, form);
  }

  // ------------------------------------------------------------------ talker: pay

  var TEST_CARDS = [
    ["4242 4242 4242 4242", "succeeds"],
    ["4000 0025 0000 3155", "asks for 3-D Secure"],
    ["4000 0027 6000 3184", "asks for 3-D Secure on every payment, renewals too"],
    ["4000 0000 0000 0002", "is declined"],
    ["4000 0000 0000 9995", "is declined: insufficient funds"],
  ];

  function waitForPayment(id) {
    // The API may answer 202 before the worker made the PaymentIntent: poll until it has a client secret.
    return api("GET", "/payment/bookings/" + id + "/").then(function (booking) {
      if (booking.status !== "pending" || (booking.payment && booking.payment.client_secret)) return booking;
      return sleep(300).then(function () { return waitForPayment(id); });
    });
  }

  function viewPay(id) {
    show(h("h1", {}, "Pay booking #" + id), h("p", {}, "Preparing the payment…"));
    return waitForPayment(id).then(function (booking) {
      var status = h("strong", { id: "booking-status", class: "status", role: "status" }, booking.status);
      if (booking.status !== "pending") {
        return show(h("h1", {}, "Booking #" + id), h("p", {}, "Status: ", status), h("a", { href: "#/bookings" }, "My bookings"));
      }
      var pkg = state.packages.find(function (p) { return p.id === booking.package; });
      var pay = payForm(booking.payment.client_secret, "Pay " + money(booking.payment.amount, booking.payment.currency), function (result) {
        status.textContent = "paid, confirming…";
        flash("Payment " + result.paymentIntent.status + ". Waiting for Talkpay to confirm the booking.");
        return waitForStatus(id, ["confirmed"], status).then(function (b) {
          if (b.status === "confirmed") {
            pay.form.remove();
            flash("Booking #" + id + " is confirmed.");
          }
        });
      });
      show(
        h("h1", {}, "Pay booking #" + id),
        h("p", {}, (pkg ? pkg.name + " (" + pkg.duration_minutes + " min), " : "") + when(booking.scheduled_at) + ". Status: ", status),
        pay.form, pay.cards,
      );
      pay.mount();
    });
  }

  // The card form both pay pages use: the card element, Stripe.js's confirmCardPayment (3-D Secure in
  // its modal), the decline message on failure. `onPaid(result)` runs once the PaymentIntent is paid.
  function payForm(clientSecret, label, onPaid) {
    var cardErrors = h("p", { id: "card-errors", class: "error", role: "alert" });
    var cardBox = h("div", { id: "card-element", class: "card-input" });
    var payButton = h("button", { type: "submit", id: "pay" }, label);
    var email = h("input", { name: "email", type: "email", value: state.me.email, autocomplete: "email", required: true });
    var form = h("form", { id: "payment-form", "aria-label": "Card payment" },
      h("label", {}, "Email for the receipt", email),
      h("div", { class: "label", id: "card-label" }, "Card"),
      cardBox, cardErrors, payButton);
    var cards = h("section", { "aria-labelledby": "cards-title", class: "test-cards" },
      h("h2", { id: "cards-title" }, "Test cards"),
      h("p", { class: "muted" }, "Any future expiry date and any CVC."),
      h("ul", {}, TEST_CARDS.map(function (c) { return h("li", {}, h("code", {}, c[0]), " " + c[1]); })));
    var card = state.stripe.elements().create("card", { hidePostalCode: true });
    card.on("change", function (event) { cardErrors.textContent = event.error ? event.error.message : ""; });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      payButton.disabled = true;
      cardErrors.textContent = "";
      state.stripe.confirmCardPayment(clientSecret, {
        payment_method: { card: card, billing_details: { email: email.value } },
      }).then(function (result) {
        if (result.error) {
          cardErrors.textContent = result.error.message;
          payButton.disabled = false;
          return;
        }
        return onPaid(result);
      });
    });
    // mount() once the form is on the page (the element needs its container in the document).
    return { form: form, cards: cards, mount: function () { card.mount(cardBox); } };
  }

  // Poll the booking until it reaches one of `wanted` (the webhook's worker moves it), at most ~60 s.
  function waitForStatus(id, wanted, statusNode, tries) {
    tries = tries || 0;
    return api("GET", "/payment/bookings/" + id + "/").then(function (b) {
      if (wanted.indexOf(b.status) >= 0 || tries > 120) {
        if (statusNode) statusNode.textContent = b.status;
        return b;
      }
      return sleep(500).then(function () { return waitForStatus(id, wanted, statusNode, tries + 1); });
    });
  }

  // ------------------------------------------------------------------ bookings (both roles)

  var POLICY = {
    unpaid: "nothing was paid yet",
    listener_cancelled: "the listener cancels: everything back",
    talker_early: "cancelled early enough: everything back",
    talker_late: "cancelled late: part back",
    talker_after_start: "after the start: nothing back",
  };

  function viewBookings() {
    return api("GET", "/payment/bookings/").then(function (page) {
      var rows = results(page);
      var talker = state.me.role === "talker";
      var notice = h("div", { id: "cancel-panel", role: "region", "aria-live": "polite", "aria-label": "Cancellation" });
      var table = h("table", { id: "bookings" },
        h("thead", {}, h("tr", {}, ["#", talker ? "Listener" : "Talker", "When", "Amount", "Status", ""].map(function (t) {
          return h("th", { scope: "col" }, t);
        }))),
        h("tbody", {}, rows.map(function (b) { return bookingRow(b, talker, notice); })));
      show(h("h1", {}, talker ? "My bookings" : "My sessions"), notice,
        rows.length ? table : h("p", {}, "No bookings yet."));
    });
  }

  function bookingRow(b, talker, notice) {
    var actions = h("td", { class: "actions" });
    var statusCell = h("td", { class: "status" }, b.status);
    if (talker && b.status === "pending" && b.payment && b.payment.client_secret) {
      append(actions, h("a", { href: "#/pay/" + b.id, class: "button" }, "Pay"));
    }
    if (b.status === "pending" || b.status === "confirmed") {
      append(actions, h("button", { type: "button", onclick: function () { askCancel(b, notice); } }, "Cancel"));
    }
    if (!talker && b.status === "confirmed") append(actions, sessionButton(b, "start_session", "Start session"));
    if (!talker && b.status === "in_progress") append(actions, sessionButton(b, "complete_session", "Complete session"));
    var other = talker ? state.listeners[b.listener] : null;
    return h("tr", { "data-booking": b.id },
      h("td", {}, String(b.id)),
      h("td", {}, other ? listenerName(other) : "#" + (talker ? b.listener : b.talker)),
      h("td", {}, when(b.scheduled_at)),
      h("td", {}, money(talker ? b.total_amount : b.listener_amount, b.currency)),
      statusCell, actions);
  }

  function sessionButton(b, action, label) {
    return h("button", { type: "button", onclick: function (e) {
      e.target.disabled = true;
      api("POST", "/payment/bookings/" + b.id + "/" + action + "/").then(viewBookings, function (err) {
        flash(errorText(err));
        e.target.disabled = false;
      });
    } }, label);
  }

  function askCancel(b, notice) {
    notice.textContent = "";
    api("GET", "/payment/bookings/" + b.id + "/cancel_quote/").then(function (quote) {
      var reason = h("input", { name: "reason", maxlength: 2000 });
      var text = quote.policy === "unpaid"
        ? "Cancel booking #" + b.id + "? Nothing was paid, so nothing is refunded."
        : "Cancel booking #" + b.id + "? You get " + money(quote.amount, b.currency) + " back (" + (POLICY[quote.policy] || quote.policy) + ").";
      append(notice, h("div", { class: "panel", id: "cancel-quote" },
        h("p", { id: "cancel-quote-text" }, text),
        h("label", {}, "Reason (optional)", reason),
        h("button", { type: "button", id: "confirm-cancel", onclick: function (e) {
          e.target.disabled = true;
          api("POST", "/payment/bookings/" + b.id + "/cancel/", { reason: reason.value }).then(function (res) {
            return showRefund(b.id, res.refund, notice);
          }, function (err) {
            notice.textContent = errorText(err);
          });
        } }, "Confirm cancellation"),
        h("button", { type: "button", class: "link", onclick: function () { notice.textContent = ""; } }, "Keep booking")));
      notice.querySelector("#confirm-cancel").focus();
    }, function (err) { notice.textContent = errorText(err); });
  }

  function showRefund(id, refund, notice) {
    notice.textContent = "";
    var line = h("p", { id: "refund-status" });
    append(notice, h("div", { class: "panel" }, line));
    if (!refund || refund.amount === "0.00") {
      line.textContent = "Booking #" + id + " is cancelled. Nothing to refund.";
      return viewBookingsKeeping(notice);
    }
    line.textContent = "Booking #" + id + " is cancelled. Refund of " + money(refund.amount, refund.currency) + ": " + (refund.status || "requested") + "…";
    return waitForStatus(id, ["refunded"]).then(function (b) {
      if (b.status === "refunded") line.textContent = "Booking #" + id + " is refunded: " + money(refund.amount, refund.currency) + " is on its way back to your card.";
      else line.textContent = "Booking #" + id + " is " + b.status + ". The refund of " + money(refund.amount, refund.currency) + " is still being processed.";
      return viewBookingsKeeping(notice);
    });
  }

  function viewBookingsKeeping(notice) {
    return rerenderKeeping(viewBookings, "cancel-panel", notice);
  }

  // Re-render a view and move what `notice` shows into the new view's panel `panelId`.
  function rerenderKeeping(view, panelId, notice) {
    var kept = Array.prototype.slice.call(notice.childNodes);
    return view().then(function () {
      var fresh = document.getElementById(panelId);
      kept.forEach(function (n) { fresh.appendChild(n); });
    });
  }

  // ------------------------------------------------------------------ subscriptions: a standing slot

  var WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
  var ENDED = ["canceled", "unpaid", "incomplete_expired", "failed"];

  function headRow(titles) {
    return h("thead", {}, h("tr", {}, titles.map(function (t) { return h("th", { scope: "col" }, t); })));
  }

  function planLabel(p) {
    return p.name + " · " + p.duration_minutes + " min · " + money(p.price, p.currency) + " a " + p.interval;
  }

  // What the form's choice means, in the talker's own time: "Every Tuesday at 18:00, from ...".
  function slotSummary(startLocal, plan) {
    var d = new Date(startLocal);
    if (!plan || isNaN(d.getTime())) return "";
    var every = plan.interval === "week" ? "Every " + WEEKDAYS[d.getDay()] : "Every month on day " + d.getDate();
    return every + " at " + d.toLocaleTimeString(undefined, { timeStyle: "short" }) + ", from " + when(d) + ": " +
      money(plan.price, plan.currency) + " billed each " + plan.interval + ", ahead of its session.";
  }

  function standingSlot(sub) {
    var s = sub.standing_slot;
    return (s.interval === "week" ? "every " + s.weekday : "day " + s.day_of_month + " of each month") + ", " + s.time + " " + s.timezone;
  }

  function otherParty(sub) {
    var talker = state.me.role === "talker";
    var other = talker ? state.listeners[sub.listener] : null;
    return other ? listenerName(other) : "#" + (talker ? sub.listener : sub.talker);
  }

  function payable(sub) {
    return (sub.status === "incomplete" || sub.status === "past_due") && !!(sub.payment && sub.payment.client_secret);
  }

  function viewSubscribe() {
    return Promise.all([api("GET", "/payment/listeners/"), api("GET", "/payment/subscription_plans/")]).then(function (r) {
      var listeners = results(r[0]);
      var plans = results(r[1]);
      listeners.forEach(function (l) { state.listeners[l.id] = l; });
      var title = h("h1", {}, "Subscribe to a standing slot");
      if (!plans.length) return show(title, h("p", {}, "No subscription plans are on offer yet: an admin adds them at ", h("a", { href: "/admin/subscriptions/subscriptionplan/" }, "/admin/subscriptions/subscriptionplan/"), "."));
      if (!listeners.length) return show(title, h("p", {}, "No listener takes bookings right now."));
      var error = h("p", { class: "error", role: "alert", id: "subscribe-error" });
      var summary = h("p", { id: "slot-summary", "aria-live": "polite" });
      var button = h("button", { type: "submit" }, "Subscribe and pay");
      var form = h("form", { id: "subscribe-form", "aria-labelledby": "subscribe-title" },
        h("h2", { id: "subscribe-title" }, "The same listener at the same time, every week or month"),
        h("label", {}, "Listener", h("select", { name: "listener" }, listeners.map(function (l) {
          return h("option", { value: l.id, "data-username": l.username }, listenerName(l));
        }))),
        h("label", {}, "Plan", h("select", { name: "plan" }, plans.map(function (p) { return h("option", { value: p.id }, planLabel(p)); }))),
        h("label", {}, "First session", h("input", { name: "first_session_at", type: "datetime-local", value: nextSlot(1), required: true })),
        summary, button, error);
      var update = function () {
        var plan = plans.find(function (p) { return p.id === +form.plan.value; });
        summary.textContent = slotSummary(form.first_session_at.value, plan);
      };
      form.addEventListener("input", update);
      form.addEventListener("change", update);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        error.textContent = "";
        button.disabled = true;
        api("POST", "/payment/subscriptions/", {
          listener_id: +form.listener.value,
          plan_id: +form.plan.value,
          first_session_at: new Date(form.first_session_at.value).toISOString(),
        }, idempotencyKey()).then(function (created) {
          location.hash = "#/subscription/" + created.subscription.id;
        }, function (err) {
          error.textContent = errorText(err);
          button.disabled = false;
        });
      });
      show(title,
        h("p", { class: "muted" }, "Subscribing holds the next sessions of the slot at once. Each period is paid ahead, " +
          "and its session is confirmed when it is. Pause, resume or cancel it under My subscriptions."),
        form);
      update();
    });
  }

  // Poll the subscription until `done(sub)` (webhooks move it), at most ~60 s.
  function waitForSubscription(id, done, statusNode, tries) {
    tries = tries || 0;
    return api("GET", "/payment/subscriptions/" + id + "/").then(function (sub) {
      if (done(sub) || tries > 120) {
        if (statusNode) statusNode.textContent = sub.status;
        return sub;
      }
      return sleep(500).then(function () { return waitForSubscription(id, done, statusNode, tries + 1); });
    });
  }

  function confirmedCount(sub) {
    return sub.bookings.filter(function (b) { return b.status === "confirmed"; }).length;
  }

  // Done once the paid period's session is confirmed too (the invoice's webhook), or it ended.
  function activeAndBooked(before) {
    return function (sub) {
      return (sub.status === "active" && confirmedCount(sub) > before) || ENDED.indexOf(sub.status) >= 0;
    };
  }

  function subscriptionFacts(sub, statusNode) {
    return h("dl", { class: "facts" },
      h("dt", {}, state.me.role === "talker" ? "Listener" : "Talker"), h("dd", {}, otherParty(sub)),
      h("dt", {}, "Plan"), h("dd", {}, planLabel(sub.plan)),
      h("dt", {}, "Standing slot"), h("dd", {}, standingSlot(sub)),
      h("dt", {}, "Next session"), h("dd", { id: "next-session" }, sub.next_session_at ? when(sub.next_session_at) : "—"),
      h("dt", {}, "Status"), h("dd", {}, statusNode));
  }

  function sessionsTable(sub) {
    if (!sub.bookings.length) return h("p", { class: "muted" }, "No sessions are held for it.");
    return h("table", { id: "subscription-sessions", "aria-label": "Sessions of subscription #" + sub.id },
      headRow(["Session", "When", "Amount", "Status"]),
      h("tbody", {}, sub.bookings.map(function (b) {
        return h("tr", { "data-session": b.id },
          h("td", {}, "#" + (b.occurrence + 1)), h("td", {}, when(b.scheduled_at)),
          h("td", {}, money(b.total_amount, sub.plan.currency)), h("td", { class: "status" }, b.status));
      })));
  }

  // One subscription: its slot and sessions, and the card form while a payment waits (the first
  // invoice, or a renewal that asks for 3-D Secure).
  function viewSubscription(id) {
    show(h("h1", {}, "Subscription #" + id), h("p", {}, "Preparing the first invoice…"));
    return waitForSubscription(id, function (s) { return s.status !== "creating"; }).then(function (sub) {
      var status = h("strong", { id: "subscription-status", class: "status", role: "status" }, sub.status);
      var sessions = h("section", { "aria-labelledby": "sessions-title" }, h("h2", { id: "sessions-title" }, "Sessions"), sessionsTable(sub));
      var head = [h("h1", {}, "Subscription #" + id), subscriptionFacts(sub, status)];
      var back = h("p", {}, h("a", { href: "#/subscriptions" }, state.me.role === "talker" ? "My subscriptions" : "Subscriptions"));
      if (state.me.role !== "talker" || !payable(sub)) return show(head, sessions, back);
      var renewal = sub.status === "past_due";
      var paid = function () {
        status.textContent = "paid, activating…";
        flash("Payment received. Waiting for Stripe's invoice to activate the subscription.");
        return waitForSubscription(id, activeAndBooked(confirmedCount(sub)), status).then(function (s) {
          show(h("h1", {}, "Subscription #" + id), subscriptionFacts(s, status),
            h("section", { "aria-labelledby": "sessions-title" }, h("h2", { id: "sessions-title" }, "Sessions"), sessionsTable(s)), back);
          if (s.status === "active") flash("Subscription #" + id + " is active. Next session: " + (s.next_session_at ? when(s.next_session_at) : "—") + ".");
        });
      };
      var amount = money(sub.plan.price, sub.plan.currency);
      var pay = payForm(sub.payment.client_secret, (renewal ? "Pay the renewal with this card, " : "Pay ") + amount, paid);
      // A renewal that asks for 3-D Secure: the saved card only needs the challenge (confirmCardPayment
      // with no payment method confirms the one the PaymentIntent has).
      var saved = null;
      if (renewal) {
        var savedError = h("p", { id: "authenticate-errors", class: "error", role: "alert" });
        var authenticate = h("button", { type: "button", id: "authenticate", onclick: function () {
          authenticate.disabled = true;
          savedError.textContent = "";
          state.stripe.confirmCardPayment(sub.payment.client_secret).then(function (result) {
            if (result.error) {
              savedError.textContent = result.error.message;
              authenticate.disabled = false;
              return;
            }
            return paid();
          });
        } }, "Authenticate " + amount + " with your saved card");
        saved = h("section", { "aria-labelledby": "renewal-title" }, h("h2", { id: "renewal-title" }, "This renewal asks for 3-D Secure"),
          h("p", {}, "Your bank wants to confirm the renewal payment. Authenticate it with the card you subscribed with, or pay it with another card below."),
          authenticate, savedError);
      }
      show(head, saved, pay.form, pay.cards, sessions, back);
      pay.mount();
    });
  }

  function viewSubscriptions() {
    var talker = state.me.role === "talker";
    return Promise.all([
      api("GET", "/payment/subscriptions/"),
      talker ? api("GET", "/payment/listeners/") : Promise.resolve([]),
    ]).then(function (r) {
      var subs = results(r[0]);
      results(r[1]).forEach(function (l) { state.listeners[l.id] = l; });
      var notice = h("div", { id: "subscription-panel", role: "region", "aria-live": "polite", "aria-label": "Subscription changes" });
      var table = h("table", { id: "subscriptions" },
        headRow(["#", talker ? "Listener" : "Talker", "Plan", "Standing slot", "Next session", "Status", ""]),
        h("tbody", {}, subs.map(function (s) { return subscriptionRow(s, talker, notice); })));
      var none = talker
        ? h("p", {}, "No subscriptions yet. ", h("a", { href: "#/subscribe" }, "Subscribe to a standing slot"))
        : h("p", {}, "No talker subscribes to your time yet.");
      show(h("h1", {}, talker ? "My subscriptions" : "Subscriptions"), notice, subs.length ? table : none);
    });
  }

  function subscriptionRow(sub, talker, notice) {
    var actions = h("td", { class: "actions" });
    var live = ENDED.indexOf(sub.status) < 0 && sub.status !== "creating";
    if (talker && payable(sub)) append(actions, h("a", { href: "#/subscription/" + sub.id, class: "button" }, "Pay"));
    if (talker && live) {
      var pausable = (sub.status === "active" || sub.status === "past_due") && !sub.cancel_at_period_end && !sub.pending_change;
      if (pausable) append(actions, subscriptionAction(sub, "pause", "Pause", notice));
      if (sub.status === "paused") append(actions, subscriptionAction(sub, "resume", "Resume", notice));
      if (!sub.cancel_at_period_end && sub.status !== "incomplete") {
        append(actions, h("button", { type: "button", "data-action": "cancel-at-period-end", onclick: function () {
          askCancelSubscription(sub, true, notice);
        } }, "Cancel at period end"));
      }
      append(actions, h("button", { type: "button", "data-action": "cancel-now", onclick: function () {
        askCancelSubscription(sub, false, notice);
      } }, "Cancel now"));
    }
    var ends = live && sub.cancel_at_period_end && sub.current_period_end ? ", ends " + when(sub.current_period_end) : "";
    return h("tr", { "data-subscription": sub.id },
      h("td", {}, h("a", { href: "#/subscription/" + sub.id, "aria-label": "Subscription #" + sub.id }, String(sub.id))),
      h("td", {}, otherParty(sub)),
      h("td", {}, planLabel(sub.plan)),
      h("td", {}, standingSlot(sub)),
      h("td", {}, sub.next_session_at ? when(sub.next_session_at) : "—"),
      h("td", { class: "status" }, sub.status + ends),
      actions);
  }

  function subscriptionAction(sub, action, label, notice) {
    return h("button", { type: "button", "data-action": action, onclick: function (e) {
      e.target.disabled = true;
      notice.textContent = "";
      api("POST", "/payment/subscriptions/" + sub.id + "/" + action + "/").then(function (s) {
        var text = action === "pause"
          ? "Subscription #" + s.id + " is " + s.status + ": nothing is billed until you resume it; this period's session stays."
          : "Subscription #" + s.id + " is " + s.status + " again: billed from the next period, its session held ahead.";
        append(notice, h("div", { class: "panel" }, h("p", { id: "subscription-result" }, text)));
        return rerenderKeeping(viewSubscriptions, "subscription-panel", notice);
      }, function (err) {
        notice.textContent = errorText(err);
        e.target.disabled = false;
      });
    } }, label);
  }

  // The session of the period paid for, which cancelling now cancels and refunds by the policy.
  function currentSession(sub) {
    var paid = sub.bookings.filter(function (b) { return b.status === "confirmed"; });
    return paid.length ? paid[paid.length - 1] : null;
  }

  function askCancelSubscription(sub, atPeriodEnd, notice) {
    notice.textContent = "";
    var current = atPeriodEnd ? null : currentSession(sub);
    var quoted = current ? api("GET", "/payment/bookings/" + current.id + "/cancel_quote/") : Promise.resolve(null);
    quoted.then(function (quote) {
      var text;
      if (atPeriodEnd) {
        text = "Stop subscription #" + sub.id + " at the end of this period" +
          (sub.current_period_end ? " (" + when(sub.current_period_end) + ")" : "") +
          "? The session already paid for stays booked; nothing more is billed.";
      } else if (!current) {
        text = "Cancel subscription #" + sub.id + " now? No paid session is coming, so nothing is refunded; the held slots are released.";
      } else {
        text = "Cancel subscription #" + sub.id + " now? Billing stops, the held slots are released, and this period's session (" +
          when(current.scheduled_at) + ") is cancelled: you get " + money(quote.amount, sub.plan.currency) + " back (" +
          (POLICY[quote.policy] || quote.policy) + ").";
      }
      append(notice, h("div", { class: "panel", id: "subscription-quote" },
        h("p", { id: "subscription-quote-text" }, text),
        h("button", { type: "button", id: "confirm-subscription-cancel", onclick: function (e) {
          e.target.disabled = true;
          api("POST", "/payment/subscriptions/" + sub.id + "/cancel/", { at_period_end: atPeriodEnd }).then(function (s) {
            return subscriptionCancelled(s, current, quote, notice);
          }, function (err) {
            notice.textContent = errorText(err);
          });
        } }, atPeriodEnd ? "Cancel at period end" : "Cancel now"),
        h("button", { type: "button", class: "link", onclick: function () { notice.textContent = ""; } }, "Keep subscription")));
      notice.querySelector("#confirm-subscription-cancel").focus();
    }, function (err) { notice.textContent = errorText(err); });
  }

  function subscriptionCancelled(sub, current, quote, notice) {
    notice.textContent = "";
    var line = h("p", { id: "subscription-result" });
    append(notice, h("div", { class: "panel" }, line));
    var reload = function () { return rerenderKeeping(viewSubscriptions, "subscription-panel", notice); };
    var name = "Subscription #" + sub.id;
    if (ENDED.indexOf(sub.status) < 0) {
      line.textContent = name + " ends " + (sub.current_period_end ? "on " + when(sub.current_period_end) : "at the end of this period") + ": nothing more is billed.";
      return reload();
    }
    if (!current || !quote || quote.amount === "0.00") {
      line.textContent = name + " is " + sub.status + ". Nothing to refund.";
      return reload();
    }
    var amount = money(quote.amount, sub.plan.currency);
    line.textContent = name + " is " + sub.status + ". Refund of " + amount + " for the session of " + when(current.scheduled_at) + ": requested…";
    return waitForStatus(current.id, ["refunded"]).then(function (b) {
      line.textContent = b.status === "refunded"
        ? name + " is " + sub.status + " and its session is refunded: " + amount + " is on its way back to your card."
        : name + " is " + sub.status + ". The refund of " + amount + " is still being processed.";
      return reload();
    });
  }

  // ------------------------------------------------------------------ talker: payments

  function viewPayments() {
    return api("GET", "/payment/payments/").then(function (page) {
      var rows = results(page);
      show(h("h1", {}, "My payments"), rows.length ? h("table", { id: "payments" },
        h("thead", {}, h("tr", {}, ["Booking", "Amount", "Refunded", "Status", "Paid at"].map(function (t) { return h("th", { scope: "col" }, t); }))),
        h("tbody", {}, rows.map(function (p) {
          return h("tr", {}, h("td", {}, "#" + p.booking), h("td", {}, money(p.amount, p.currency)),
            h("td", {}, money(p.amount_refunded, p.currency)), h("td", {}, p.status + (p.failure_message ? ": " + p.failure_message : "")),
            h("td", {}, p.succeeded_at ? when(p.succeeded_at) : "—"));
        }))) : h("p", {}, "No payments yet."));
    });
  }

  // ------------------------------------------------------------------ listener: payouts

  function viewAccount() {
    return Promise.all([
      api("GET", "/payment/connect/status/"),
      api("GET", "/payment/payouts/pending_earnings/"),
      api("GET", "/payment/payouts/"),
      api("GET", "/payment/payouts/transfers/"),
    ]).then(function (r) {
      var status = r[0], totals = r[1], earnings = results(r[2]), payouts = results(r[3]);
      var account = status.account;
      var onboardError = h("p", { class: "error", role: "alert" });
      var accountBox;
      if (account && account.can_receive_payouts) {
        flash("");
        accountBox = h("p", { id: "connect-state", class: "ok" }, "Payouts enabled");
      } else if (account && account.payouts_enabled && account.details_submitted) {
        // Onboarded, but Stripe put the transfers capability under review or deactivated it: earnings wait.
        accountBox = h("p", { id: "connect-state" }, "Stripe has paused transfers to your account (" +
          (account.transfers_capability_reason || account.transfers_capability) + "). Your earnings are kept until it is resolved.");
      } else {
        accountBox = h("div", {},
          h("p", { id: "connect-state" }, account ? "Stripe still needs details before you can be paid." : "Payouts are not set up yet."),
          h("button", { type: "button", id: "onboard", onclick: function (e) { onboard(e.target, onboardError); } },
            account ? "Continue Stripe onboarding" : "Set up payouts with Stripe"),
          onboardError);
      }
      // A single-use Express dashboard link, made by the status call for this page view.
      var dashboard = /^https?:\/\//.test(status.dashboard_url || "")
        ? h("p", {}, h("a", { id: "express-dashboard", href: status.dashboard_url, target: "_blank", rel: "noopener" },
          "Open your Stripe Express dashboard"), " (balance, bank payouts, details)")
        : null;
      show(
        h("h1", {}, "Payouts"),
        h("section", { "aria-labelledby": "acct-title" }, h("h2", { id: "acct-title" }, "Stripe account"), accountBox, dashboard,
          account ? h("dl", { class: "facts" },
            h("dt", {}, "Account"), h("dd", {}, account.stripe_account_id),
            h("dt", {}, "Details submitted"), h("dd", {}, account.details_submitted ? "yes" : "no"),
            h("dt", {}, "Charges enabled"), h("dd", {}, account.charges_enabled ? "yes" : "no"),
            h("dt", {}, "Payouts enabled"), h("dd", {}, account.payouts_enabled ? "yes" : "no"),
            h("dt", {}, "Transfers"), h("dd", { id: "transfers-capability" }, account.transfers_capability +
              (account.transfers_capability_reason ? " (" + account.transfers_capability_reason + ")" : ""))) : null,
          status.payouts_blocked_by.length ? h("p", {}, "Held " + money(status.held_amount) + ": " + status.payouts_blocked_by.join(", ")) : null),
        h("section", { "aria-labelledby": "earn-title" }, h("h2", { id: "earn-title" }, "Earnings"),
          h("dl", { class: "facts" }, h("dt", {}, "Pending"), h("dd", { id: "pending-earnings" }, money(totals.pending_earnings)),
            h("dt", {}, "Total earned"), h("dd", { id: "total-earned" }, money(totals.total_earned))),
          earnings.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Booking", "Session", "Net", "Status", "Payable"].map(function (t) { return h("th", { scope: "col" }, t); }))),
            h("tbody", {}, earnings.map(function (e) {
              return h("tr", {}, h("td", {}, "#" + e.booking), h("td", {}, when(e.scheduled_at)), h("td", {}, money(e.net_amount, e.currency)),
                h("td", {}, e.status), h("td", {}, e.payable_at ? when(e.payable_at) : "after the session"));
            }))) : h("p", { class: "muted" }, "No earnings yet.")),
        h("section", { "aria-labelledby": "po-title" }, h("h2", { id: "po-title" }, "Payouts"),
          payouts.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Period", "Amount", "Status", "Paid"].map(function (t) { return h("th", { scope: "col" }, t); }))),
            h("tbody", {}, payouts.map(function (p) {
              return h("tr", {}, h("td", {}, p.period_start + " – " + p.period_end), h("td", {}, money(p.amount, p.currency)),
                h("td", {}, p.status), h("td", {}, p.paid_at ? when(p.paid_at) : "—"));
            }))) : h("p", { class: "muted" }, "No payouts yet: they run weekly or monthly.")),
      );
    });
  }

  // Onboarding opens in a new tab, so this tab keeps its in-memory sign-in; it polls the account
  // (updated by Stripe's account.updated webhook) until payouts are enabled.
  function onboard(button, errorNode) {
    button.disabled = true;
    var tab = window.open("", "_blank");
    api("POST", "/payment/connect/onboarding/").then(function (link) {
      if (tab) tab.location = link.url;
      else location.assign(link.url);
      flash("Finish onboarding in the Stripe tab; this page updates by itself.");
      return pollAccount(0);
    }, function (err) {
      if (tab) tab.close();
      errorNode.textContent = errorText(err);
      button.disabled = false;
    });
  }

  function pollAccount(tries) {
    return api("GET", "/payment/connect/status/").then(function (s) {
      if ((s.account && s.account.payouts_enabled) || tries > 240 || location.hash !== "#/account") {
        flash(s.account && s.account.payouts_enabled ? "Payouts enabled." : "");
        return location.hash === "#/account" ? viewAccount() : null;
      }
      return sleep(500).then(function () { return pollAccount(tries + 1); });
    });
  }

  function viewConnectReturn(kind) {
    document.getElementById("nav").textContent = "";
    if (kind === "return") {
      if (channel) channel.postMessage({ type: "connect-returned" });
      show(h("h1", {}, "Stripe onboarding finished"),
        h("p", { id: "connect-return" }, "You can close this tab: your Talkpay tab shows your payout status."),
        h("p", {}, h("a", { href: "/" }, "Open Talkpay")));
    } else {
      show(h("h1", {}, "The onboarding link expired"),
        h("p", { id: "connect-refresh" }, "Go back to your Talkpay tab and choose “Continue Stripe onboarding” for a fresh link."),
        h("p", {}, h("a", { href: "/" }, "Open Talkpay")));
    }
  }

  // ------------------------------------------------------------------ routing

  function route() {
    routeSeq++;
    var path = location.pathname.replace(/\/$/, "");
    if (path === "/connect/return") return viewConnectReturn("return");
    if (path === "/connect/refresh") return viewConnectReturn("refresh");
    flash("");
    var hash = location.hash.replace(/^#\/?/, "");
    if (!state.me) {
      if (hash !== "signin") {
        location.hash = "#/signin"; // hashchange routes
        return;
      }
      return viewSignIn();
    }
    var parts = hash.split("/");
    var views = state.me.role === "talker"
      ? { listeners: viewListeners, pay: viewPay, bookings: viewBookings, payments: viewPayments,
          subscribe: viewSubscribe, subscriptions: viewSubscriptions, subscription: viewSubscription }
      : { account: viewAccount, bookings: viewBookings, subscriptions: viewSubscriptions, subscription: viewSubscription };
    var view = views[parts[0]];
    if (!view) return home();
    var done = view(parts[1]);
    if (done && done.catch) {
      done.catch(function (err) { show(h("p", { class: "error", role: "alert" }, err.message || String(err))); });
    }
    main.focus({ preventScroll: true });
  }

  if (channel) {
    channel.onmessage = function (event) {
      if (event.data && event.data.type === "connect-returned" && location.hash === "#/account" && state.me) viewAccount();
    };
  }

  window.addEventListener("hashchange", route);
  api("GET", "/payment/stripe/config/").then(function (config) {
    state.config = config;
    state.stripe = window.Stripe(config.publishable_key);
    route();
  }, function () {
    show(h("p", { class: "error", role: "alert" }, "The Talkpay API does not answer."));
  });
})();
