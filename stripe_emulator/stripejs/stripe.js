/*
 * Stripe.js stand-in served by the Stripe emulator at /v3/ (and /v3/stripe.js).
 *
 * The part of Stripe.js that card payments use, with Stripe.js's names and return shapes, talking
 * to the emulator that served this file with the publishable key and the client secret, as
 * Stripe.js talks to api.stripe.com. Unlike Stripe.js the card element is plain inputs on the page
 * (no iframe): this is for offline development and tests, never for real card numbers.
 * The list of what is implemented is in stripe_emulator/README.md ("Stripe.js stand-in").
 */
(function () {
  "use strict";
  if (window.Stripe && window.Stripe.__emulator) {
    return;
  }

  var script = document.currentScript;
  var API_BASE = script && script.src ? new URL(script.src).origin : window.location.origin;
  var VERSION = "emulator-v3";

  function IntegrationError(message) {
    var error = new Error(message);
    error.name = "IntegrationError";
    return error;
  }

  // ------------------------------------------------------------------ HTTP

  function encodeParams(value, prefix, out) {
    if (value === undefined || value === null) {
      return out;
    }
    if (Array.isArray(value)) {
      value.forEach(function (item, i) {
        encodeParams(item, prefix + "[" + i + "]", out);
      });
    } else if (typeof value === "object") {
      Object.keys(value).forEach(function (k) {
        encodeParams(value[k], prefix ? prefix + "[" + k + "]" : k, out);
      });
    } else {
      out.push(encodeURIComponent(prefix) + "=" + encodeURIComponent(String(value)));
    }
    return out;
  }

  // Form-encoded with the key in the parameters, as Stripe.js sends it: a "simple" CORS request.
  function request(key, method, path, params) {
    var query = encodeParams(params || {}, "", ["key=" + encodeURIComponent(key)]).join("&");
    var url = API_BASE + path;
    var init = { method: method, headers: {} };
    if (method === "GET") {
      url += "?" + query;
    } else {
      init.headers["Content-Type"] = "application/x-www-form-urlencoded";
      init.body = query;
    }
    return fetch(url, init).then(
      function (response) {
        return response.json().then(function (body) {
          return { status: response.status, body: body };
        });
      },
      function (reason) {
        return {
          status: 0,
          body: {
            error: {
              type: "api_connection_error",
              message: "We could not reach Stripe (the emulator at " + API_BASE + "): " + reason,
            },
          },
        };
      },
    );
  }

  function intentId(clientSecret, kind, method) {
    var prefix = kind === "setup_intent" ? "seti_" : "pi_";
    var match = typeof clientSecret === "string" && clientSecret.match(/^((?:pi|seti)_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+$/);
    if (!match || match[1].indexOf(prefix) !== 0) {
      throw IntegrationError(
        "Invalid value for " + method + " intent secret: value should be a " + kind + " client_secret string. " +
          "You specified: " + clientSecret + ".",
      );
    }
    return match[1];
  }

  // ------------------------------------------------------------------ card element

  var MESSAGES = {
    incomplete_number: "Your card number is incomplete.",
    invalid_number: "Your card number is invalid.",
    incomplete_expiry: "Your card's expiration date is incomplete.",
    invalid_expiry_month: "Your card's expiration date is invalid.",
    invalid_expiry_month_past: "Your card's expiration date is in the past.",
    invalid_expiry_year_past: "Your card's expiration year is in the past.",
    incomplete_cvc: "Your card's security code is incomplete.",
    incomplete_zip: "Your postal code is incomplete.",
  };

  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = +digits[digits.length - 1 - i];
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function brandOf(digits) {
    if (/^4/.test(digits)) return "visa";
    if (/^(5[1-5]|2[2-7])/.test(digits)) return "mastercard";
    if (/^3[47]/.test(digits)) return "amex";
    if (/^6(011|5)/.test(digits)) return "discover";
    return "unknown";
  }

  function numberLength(brand) {
    return brand === "amex" ? 15 : 16;
  }

  function cardState(values, hidePostalCode) {
    var digits = values.number.replace(/\D/g, "");
    var brand = brandOf(digits);
    var exp = values.expiry.replace(/\D/g, "");
    var cvc = values.cvc.replace(/\D/g, "");
    var empty = !digits && !exp && !cvc && !values.postal;
    var error = null;
    var complete = false;
    var month = +exp.slice(0, 2);
    var year = 2000 + +exp.slice(2, 4);
    var now = new Date();
    if (digits.length >= numberLength(brand) && !luhn(digits)) {
      error = "invalid_number";
    } else if (exp.length >= 2 && (month < 1 || month > 12)) {
      error = "invalid_expiry_month";
    } else if (exp.length === 4 && year < now.getFullYear()) {
      error = "invalid_expiry_year_past";
    } else if (exp.length === 4 && year === now.getFullYear() && month < now.getMonth() + 1) {
      error = "invalid_expiry_month_past";
    }
    var missing = null;
    if (digits.length < numberLength(brand)) missing = "incomplete_number";
    else if (exp.length < 4) missing = "incomplete_expiry";
    else if (cvc.length < (brand === "amex" ? 4 : 3)) missing = "incomplete_cvc";
    else if (!hidePostalCode && !values.postal.trim()) missing = "incomplete_zip";
    complete = !error && !missing;
    return {
      digits: digits,
      brand: brand,
      empty: empty,
      complete: complete,
      errorCode: error,
      missingCode: missing,
      exp_month: month,
      exp_year: year,
      cvc: cvc,
      postal: values.postal.trim(),
    };
  }

  function validationError(code) {
    return { type: "validation_error", code: code, message: MESSAGES[code] };
  }

  function formatNumber(digits) {
    return digits.replace(/(\d{4})(?=\d)/g, "$1 ");
  }

  function formatExpiry(raw) {
    var d = raw.replace(/\D/g, "").slice(0, 4);
    return d.length > 2 ? d.slice(0, 2) + " / " + d.slice(2) : d;
  }

  function CardElement(elements, options) {
    this._elements = elements;
    this._options = options || {};
    this._handlers = {};
    this._container = null;
    this._destroyed = false;
    this._values = { number: "", expiry: "", cvc: "", postal: (this._options.value || {}).postalCode || "" };
    this._build();
  }

  CardElement.prototype._build = function () {
    var self = this;
    var root = document.createElement("div");
    root.className = "__StripeEmulatorCard";
    root.style.display = "flex";
    root.style.gap = "0.5em";
    root.style.alignItems = "center";
    var fields = [
      ["number", "cardnumber", "Card number", "1234 1234 1234 1234", "cc-number", "7em"],
      ["expiry", "exp-date", "Expiration date MM / YY", "MM / YY", "cc-exp", "4.5em"],
      ["cvc", "cvc", "CVC", "CVC", "cc-csc", "3em"],
    ];
    if (!this._options.hidePostalCode) {
      fields.push(["postal", "postal", "ZIP", "ZIP", "postal-code", "4em"]);
    }
    this._inputs = {};
    fields.forEach(function (f) {
      var input = document.createElement("input");
      input.name = f[1];
      input.setAttribute("aria-label", f[2]);
      input.placeholder = f[3];
      input.autocomplete = f[4];
      input.inputMode = f[0] === "postal" ? "text" : "numeric";
      input.style.flex = f[0] === "number" ? "1 1 " + f[5] : "0 1 " + f[5];
      input.style.minWidth = "0";
      input.style.border = "0";
      input.style.outline = "none";
      input.style.font = "inherit";
      input.style.background = "transparent";
      input.value = self._values[f[0]];
      input.addEventListener("input", function () {
        if (f[0] === "number") input.value = formatNumber(input.value.replace(/\D/g, "").slice(0, 19));
        if (f[0] === "expiry") input.value = formatExpiry(input.value);
        if (f[0] === "cvc") input.value = input.value.replace(/\D/g, "").slice(0, 4);
        self._values[f[0]] = input.value;
        self._changed();
      });
      input.addEventListener("focus", function () {
        self._setClass("StripeElement--focus", true);
        self._emit("focus", { elementType: "card" });
      });
      input.addEventListener("blur", function () {
        self._setClass("StripeElement--focus", false);
        self._emit("blur", { elementType: "card" });
      });
      self._inputs[f[0]] = input;
      root.appendChild(input);
    });
    this._root = root;
  };

  CardElement.prototype._setClass = function (name, on) {
    if (this._container) this._container.classList.toggle(name, on);
  };

  CardElement.prototype._state = function () {
    return cardState(this._values, !!this._options.hidePostalCode);
  };

  CardElement.prototype._changed = function () {
    var state = this._state();
    this._setClass("StripeElement--empty", state.empty);
    this._setClass("StripeElement--complete", state.complete);
    this._setClass("StripeElement--invalid", !!state.errorCode);
    var event = {
      elementType: "card",
      empty: state.empty,
      complete: state.complete,
      brand: state.brand,
      value: { postalCode: state.postal },
    };
    if (state.errorCode) event.error = validationError(state.errorCode);
    this._emit("change", event);
  };

  CardElement.prototype._emit = function (name, event) {
    (this._handlers[name] || []).slice().forEach(function (handler) {
      handler(event);
    });
  };

  CardElement.prototype.mount = function (target) {
    if (this._destroyed) throw IntegrationError("This Element has already been destroyed. Please create a new one.");
    var node = typeof target === "string" ? document.querySelector(target) : target;
    if (!node) {
      throw IntegrationError("The selector you specified (" + target + ") applies to no DOM elements that are currently on the page.");
    }
    this.unmount();
    this._container = node;
    node.classList.add("StripeElement");
    node.appendChild(this._root);
    this._changed();
    var self = this;
    setTimeout(function () {
      self._emit("ready", { elementType: "card" });
    }, 0);
    return this;
  };

  CardElement.prototype.unmount = function () {
    if (this._container && this._root.parentNode === this._container) {
      this._container.removeChild(this._root);
      this._container.classList.remove(
        "StripeElement",
        "StripeElement--focus",
        "StripeElement--empty",
        "StripeElement--complete",
        "StripeElement--invalid",
      );
    }
    this._container = null;
    return this;
  };

  CardElement.prototype.destroy = function () {
    this.unmount();
    this._destroyed = true;
    this._elements._forget(this);
    return this;
  };

  CardElement.prototype.on = function (name, handler) {
    (this._handlers[name] = this._handlers[name] || []).push(handler);
    return this;
  };

  CardElement.prototype.once = function (name, handler) {
    var self = this;
    function wrapper(event) {
      self.off(name, wrapper);
      handler(event);
    }
    return this.on(name, wrapper);
  };

  CardElement.prototype.off = function (name, handler) {
    var list = this._handlers[name] || [];
    this._handlers[name] = handler ? list.filter(function (h) { return h !== handler; }) : [];
    return this;
  };

  CardElement.prototype.focus = function () {
    this._inputs.number.focus();
    return this;
  };

  CardElement.prototype.blur = function () {
    var active = document.activeElement;
    Object.keys(this._inputs).forEach(function (k) {
      if (this._inputs[k] === active) active.blur();
    }, this);
    return this;
  };

  CardElement.prototype.clear = function () {
    var self = this;
    Object.keys(this._inputs).forEach(function (k) {
      self._inputs[k].value = "";
      self._values[k] = "";
    });
    this._changed();
    return this;
  };

  CardElement.prototype.update = function (options) {
    Object.assign(this._options, options || {});
    return this;
  };

  function Elements(stripe, options) {
    this._stripe = stripe;
    this._options = options || {};
    this._created = {};
  }

  Elements.prototype.create = function (type, options) {
    if (type !== "card") {
      throw IntegrationError("The Stripe.js stand-in of the emulator only implements the 'card' Element, not '" + type + "'.");
    }
    if (this._created[type]) {
      throw IntegrationError("Can only create one Element of type " + type + ".");
    }
    var element = new CardElement(this, options);
    this._created[type] = element;
    return element;
  };

  Elements.prototype.getElement = function (type) {
    return this._created[type] || null;
  };

  Elements.prototype._forget = function (element) {
    var created = this._created;
    Object.keys(created).forEach(function (k) {
      if (created[k] === element) delete created[k];
    });
  };

  // ------------------------------------------------------------------ 3-D Secure

  var AUTH_FAILURE_MESSAGE =
    "We are unable to authenticate your payment method. Please choose a different payment method and try again.";

  // The challenge page of the emulator in a modal frame; resolves when it reports complete or fail.
  function showChallenge(intent) {
    return new Promise(function (resolve) {
      var overlay = document.createElement("div");
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-modal", "true");
      overlay.setAttribute("aria-label", "3-D Secure authentication");
      overlay.style.cssText =
        "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center";
      var frame = document.createElement("iframe");
      frame.name = "__privateStripeFrame3ds";
      frame.title = "3-D Secure challenge";
      frame.src = API_BASE + "/v3/three_d_secure/" + encodeURIComponent(intent.id);
      frame.style.cssText = "width:min(420px,92vw);height:min(420px,80vh);border:0;border-radius:8px;background:#fff";
      overlay.appendChild(frame);
      function onMessage(event) {
        var data = event.data || {};
        if (event.origin !== API_BASE || data.type !== "stripe-emulator-3ds" || data.payment_intent !== intent.id) {
          return;
        }
        window.removeEventListener("message", onMessage);
        document.body.removeChild(overlay);
        resolve(data.outcome);
      }
      window.addEventListener("message", onMessage);
      document.body.appendChild(overlay);
      frame.focus(); // keyboard and screen-reader users land in the challenge
    });
  }

  // ------------------------------------------------------------------ Stripe()

  function StripeInstance(key, options) {
    this._key = key;
    this._options = options || {};
  }

  function paymentMethodParams(data) {
    var params = {};
    var pm = data && data.payment_method;
    if (typeof pm === "string") {
      params.payment_method = pm;
      return { params: params };
    }
    if (pm && typeof pm === "object") {
      var card = pm.card;
      var pmData = { type: "card" };
      if (card instanceof CardElement) {
        if (card._destroyed) {
          throw IntegrationError("We could not retrieve data from the specified Element. Please make sure the Element you are attempting to use is still mounted.");
        }
        var state = card._state();
        if (!state.complete) {
          return { error: validationError(state.errorCode || state.missingCode) };
        }
        pmData.card = { number: state.digits, exp_month: state.exp_month, exp_year: state.exp_year, cvc: state.cvc };
        if (state.postal) pmData.billing_details = { address: { postal_code: state.postal } };
      } else if (card && card.token) {
        pmData.card = { token: card.token };
      } else {
        throw IntegrationError("Invalid value for payment_method.card: the emulator's Stripe.js takes a card Element or {token}.");
      }
      if (pm.billing_details) {
        var details = Object.assign({}, pm.billing_details);
        if (pmData.billing_details && pmData.billing_details.address) {
          details.address = Object.assign({}, pmData.billing_details.address, details.address || {});
        }
        pmData.billing_details = details;
      }
      if (pm.metadata) pmData.metadata = pm.metadata;
      params.payment_method_data = pmData;
    }
    return { params: params };
  }

  StripeInstance.prototype._retrieve = function (id, clientSecret) {
    return request(this._key, "GET", "/v1/payment_intents/" + id, { client_secret: clientSecret });
  };

  // After a confirmation that needs 3-D Secure: the challenge, then the intent as it is now.
  StripeInstance.prototype._handleNextAction = function (intent, clientSecret) {
    var action = intent.next_action || {};
    if (action.type === "redirect_to_url") {
      window.location.assign(action.redirect_to_url.url);
      return new Promise(function () {}); // the page is going away, as with Stripe.js
    }
    var self = this;
    return showChallenge(intent).then(function () {
      return self._retrieve(intent.id, clientSecret).then(function (res) {
        if (res.status !== 200) return { error: res.body.error };
        var pi = res.body;
        var failure = pi.last_payment_error;
        if (pi.status === "requires_payment_method" && failure) {
          return {
            error: {
              type: "invalid_request_error",
              code: failure.code || "payment_intent_authentication_failure",
              message: AUTH_FAILURE_MESSAGE,
              payment_intent: pi,
            },
          };
        }
        return { paymentIntent: pi };
      });
    });
  };

  StripeInstance.prototype.confirmCardPayment = function (clientSecret, data, options) {
    var id = intentId(clientSecret, "payment_intent", "confirmCardPayment");
    var built = paymentMethodParams(data);
    if (built.error) return Promise.resolve({ error: built.error });
    var params = Object.assign({ client_secret: clientSecret, use_stripe_sdk: "true" }, built.params);
    ["return_url", "receipt_email", "setup_future_usage", "shipping"].forEach(function (k) {
      if (data && data[k] !== undefined) params[k] = data[k];
    });
    var handleActions = !options || options.handleActions !== false;
    var self = this;
    return request(this._key, "POST", "/v1/payment_intents/" + id + "/confirm", params).then(function (res) {
      if (res.status !== 200) return { error: res.body.error };
      var pi = res.body;
      if (pi.status === "requires_action" && handleActions) return self._handleNextAction(pi, clientSecret);
      return { paymentIntent: pi };
    });
  };

  StripeInstance.prototype.handleCardAction = function (clientSecret) {
    var id = intentId(clientSecret, "payment_intent", "handleCardAction");
    var self = this;
    return this._retrieve(id, clientSecret).then(function (res) {
      if (res.status !== 200) return { error: res.body.error };
      if (res.body.status !== "requires_action") return { paymentIntent: res.body };
      return self._handleNextAction(res.body, clientSecret);
    });
  };

  StripeInstance.prototype.retrievePaymentIntent = function (clientSecret) {
    var id = intentId(clientSecret, "payment_intent", "retrievePaymentIntent");
    return this._retrieve(id, clientSecret).then(function (res) {
      return res.status === 200 ? { paymentIntent: res.body } : { error: res.body.error };
    });
  };

  // Saving a card for later (off-session) payments: the SetupIntent's customer gets the PaymentMethod.
  // The emulator's SetupIntents never ask for 3-D Secure (it is asked at the charge, if at all).
  StripeInstance.prototype.confirmCardSetup = function (clientSecret, data) {
    var id = intentId(clientSecret, "setup_intent", "confirmCardSetup");
    var built = paymentMethodParams(data);
    if (built.error) return Promise.resolve({ error: built.error });
    var params = Object.assign({ client_secret: clientSecret, use_stripe_sdk: "true" }, built.params);
    if (data && data.return_url !== undefined) params.return_url = data.return_url;
    return request(this._key, "POST", "/v1/setup_intents/" + id + "/confirm", params).then(setupIntentResult);
  };

  StripeInstance.prototype.retrieveSetupIntent = function (clientSecret) {
    var id = intentId(clientSecret, "setup_intent", "retrieveSetupIntent");
    return request(this._key, "GET", "/v1/setup_intents/" + id, { client_secret: clientSecret }).then(setupIntentResult);
  };

  function setupIntentResult(res) {
    return res.status === 200 ? { setupIntent: res.body } : { error: res.body.error };
  }

  StripeInstance.prototype.elements = function (options) {
    return new Elements(this, options);
  };

  function Stripe(key, options) {
    if (typeof key !== "string" || !key) {
      throw IntegrationError("Please call Stripe() with your publishable key. You used an empty string.");
    }
    if (/^sk_/.test(key)) {
      throw IntegrationError("You should not use your secret key with Stripe.js. Please pass a publishable key instead.");
    }
    return new StripeInstance(key, options);
  }

  Stripe.version = VERSION;
  Stripe.__emulator = { apiBase: API_BASE };
  window.Stripe = Stripe;
})();
