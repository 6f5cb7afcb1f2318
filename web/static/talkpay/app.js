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
      ? [["#/listeners", "Book a session"], ["#/bookings", "My bookings"], ["#/payments", "My payments"]]
      : [["#/account", "Payouts"], ["#/bookings", "My sessions"]];
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
      api("POST", "/payment/bookings/create_booking/", body, { "Idempotency-Key": "web-" + Date.now() + "-" + Math.random().toString(36).slice(2) })
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
      var payment = booking.payment;
      var cardErrors = h("p", { id: "card-errors", class: "error", role: "alert" });
      var cardBox = h("div", { id: "card-element", class: "card-input" });
      var payButton = h("button", { type: "submit", id: "pay" }, "Pay " + money(payment.amount, payment.currency));
      var email = h("input", { name: "email", type: "email", value: state.me.email, autocomplete: "email", required: true });
      var form = h("form", { id: "payment-form", "aria-label": "Card payment" },
        h("label", {}, "Email for the receipt", email),
        h("div", { class: "label", id: "card-label" }, "Card"),
        cardBox, cardErrors, payButton);
      var pkg = state.packages.find(function (p) { return p.id === booking.package; });
      show(
        h("h1", {}, "Pay booking #" + id),
        h("p", {}, (pkg ? pkg.name + " (" + pkg.duration_minutes + " min), " : "") + when(booking.scheduled_at) + ". Status: ", status),
        form,
        h("section", { "aria-labelledby": "cards-title", class: "test-cards" },
          h("h2", { id: "cards-title" }, "Test cards"),
          h("p", { class: "muted" }, "Any future expiry date and any CVC."),
          h("ul", {}, TEST_CARDS.map(function (c) { return h("li", {}, h("code", {}, c[0]), " " + c[1]); }))),
      );
      var elements = state.stripe.elements();
      var card = elements.create("card", { hidePostalCode: true });
      card.mount(cardBox);
      card.on("change", function (event) { cardErrors.textContent = event.error ? event.error.message : ""; });
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        payButton.disabled = true;
        cardErrors.textContent = "";
        state.stripe.confirmCardPayment(payment.client_secret, {
          payment_method: { card: card, billing_details: { email: email.value } },
        }).then(function (result) {
          if (result.error) {
            cardErrors.textContent = result.error.message;
            payButton.disabled = false;
            return;
          }
          status.textContent = "paid, confirming…";
          flash("Payment " + result.paymentIntent.status + ". Waiting for Talkpay to confirm the booking.");
          return waitForStatus(id, ["confirmed"], status).then(function (b) {
            if (b.status === "confirmed") {
              form.remove();
              flash("Booking #" + id + " is confirmed.");
            }
          });
        });
      });
    });
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
    var kept = Array.prototype.slice.call(notice.childNodes);
    return viewBookings().then(function () {
      var fresh = document.getElementById("cancel-panel");
      kept.forEach(function (n) { fresh.appendChild(n); });
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
      if (account && account.payouts_enabled) {
        flash("");
        accountBox = h("p", { id: "connect-state", class: "ok" }, "Payouts enabled");
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
            h("dt", {}, "Payouts enabled"), h("dd", {}, account.payouts_enabled ? "yes" : "no")) : null,
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
      ? { listeners: viewListeners, pay: viewPay, bookings: viewBookings, payments: viewPayments }
      : { account: viewAccount, bookings: viewBookings };
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
