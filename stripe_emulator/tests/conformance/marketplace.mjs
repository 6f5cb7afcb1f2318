// The marketplace flow against the Stripe emulator, driven by the official Node SDK (a client the
// emulator's authors did not write). Every check prints PASS or FAIL; the last line gives the counts.
//
//   STRIPE_EMULATOR_URL=http://127.0.0.1:12111 STRIPE_API_KEY=sk_test_x node marketplace.mjs
//
// Only calls that are valid on real Stripe are made; the `/_emulator/...` helpers stand in for what a
// person or the card network does there (finishing 3-D Secure, a dispute being decided), and nothing else.
import http from 'node:http';
import assert from 'node:assert/strict';
import Stripe from 'stripe';

const BASE = new URL(process.env.STRIPE_EMULATOR_URL || 'http://127.0.0.1:12111');
const KEY = process.env.STRIPE_API_KEY || 'sk_test_conformance';
const stripe = new Stripe(KEY, {
  host: BASE.hostname,
  port: Number(BASE.port),
  protocol: 'http',
  maxNetworkRetries: 2,
  telemetry: false,
});

const results = [];
const only = process.env.CONFORMANCE_ONLY; // a substring: run the matching checks only (debugging)

async function check(name, fn) {
  if (only && !name.includes(only)) return;
  const started = Date.now();
  try {
    await fn();
    results.push({name, ok: true});
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    results.push({name, ok: false});
    const why = err instanceof assert.AssertionError ? err.message : `${err.constructor.name}: ${err.message}`;
    console.log(`FAIL ${name}: ${why.split('\n').join(' | ')}`);
  }
}

async function emulator(method, path, body) {
  const res = await fetch(new URL(path, BASE), {
    method,
    headers: body ? {'Content-Type': 'application/json'} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

// The promise must reject with a Stripe error of this class whose fields match `fields`.
async function rejects(promise, cls, fields = {}) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name}, the call succeeded`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err.constructor.name} (${err.message})`);
  assert.ok(err instanceof Stripe.errors.StripeError, 'not a StripeError');
  for (const [k, v] of Object.entries(fields)) {
    assert.deepEqual(err[k], v, `${cls.name}.${k}`);
  }
  assert.match(err.requestId || '', /^req_/, 'requestId');
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0, 'message is empty');
  return err;
}

async function until(what, fn, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new assert.AssertionError({message: `timed out waiting for ${what}`});
    await new Promise((r) => setTimeout(r, 50));
  }
}

// -- a tiny webhook receiver: one path per endpoint, raw bodies kept for signature checks ---------------
const deliveries = [];
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    deliveries.push({path: req.url, body: Buffer.concat(chunks), signature: req.headers['stripe-signature']});
    res.writeHead(200, {'Content-Type': 'text/plain'});
    res.end('ok');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const hookBase = `http://127.0.0.1:${receiver.address().port}`;

const run = Date.now().toString(36);
const ctx = {};

// -- webhook endpoints, created through the API as an integration does ---------------------------------
await check('webhook endpoints: create platform and Connect endpoints, secret only on create', async () => {
  const platform = await stripe.webhookEndpoints.create({url: `${hookBase}/platform`, enabled_events: ['*']});
  const connect = await stripe.webhookEndpoints.create({
    url: `${hookBase}/connect`,
    enabled_events: ['*'],
    connect: true,
  });
  for (const we of [platform, connect]) {
    assert.equal(we.object, 'webhook_endpoint');
    assert.match(we.id, /^we_/);
    assert.match(we.secret, /^whsec_/);
    assert.equal(we.status, 'enabled');
  }
  const again = await stripe.webhookEndpoints.retrieve(platform.id);
  assert.equal(again.secret, undefined, 'the secret is shown only in the create response');
  ctx.secrets = {'/platform': platform.secret, '/connect': connect.secret};
});

// -- customer -----------------------------------------------------------------------------------------
await check('customer: create, retrieve, update metadata', async () => {
  const c = await stripe.customers.create({email: `buyer-${run}@example.com`, name: 'Ada Buyer', metadata: {run}});
  assert.match(c.id, /^cus_/);
  assert.equal(c.object, 'customer');
  assert.equal(c.email, `buyer-${run}@example.com`);
  assert.deepEqual(c.metadata, {run});
  const u = await stripe.customers.update(c.id, {metadata: {tier: 'gold'}});
  assert.deepEqual(u.metadata, {run, tier: 'gold'}, 'metadata update merges keys');
  const r = await stripe.customers.retrieve(c.id);
  assert.equal(r.name, 'Ada Buyer');
  ctx.customer = c;
});

// -- Connect Express account and onboarding -----------------------------------------------------------
await check('connect: Express account starts restricted', async () => {
  const a = await stripe.accounts.create({
    type: 'express',
    country: 'US',
    email: `host-${run}@example.com`,
    capabilities: {card_payments: {requested: true}, transfers: {requested: true}},
  });
  assert.match(a.id, /^acct_/);
  assert.equal(a.type, 'express');
  assert.equal(a.charges_enabled, false);
  assert.equal(a.payouts_enabled, false);
  assert.equal(a.details_submitted, false);
  assert.notEqual(a.capabilities.transfers, 'active');
  assert.ok(a.requirements.currently_due.length > 0, 'requirements.currently_due is empty');
  ctx.account = a;
});

await check('connect: account link, following it onboards the account', async () => {
  const link = await stripe.accountLinks.create({
    account: ctx.account.id,
    type: 'account_onboarding',
    refresh_url: 'https://talkpay.example/connect/refresh',
    return_url: 'https://talkpay.example/connect/return',
  });
  assert.equal(link.object, 'account_link');
  assert.ok(link.expires_at > link.created, 'expires_at after created');
  // the host opens the link and completes the hosted onboarding; the emulator's page does it at once
  const res = await fetch(link.url, {redirect: 'manual'});
  assert.equal(res.status, 302, 'the onboarding page sends the host back');
  assert.equal(res.headers.get('location'), 'https://talkpay.example/connect/return');
  const a = await stripe.accounts.retrieve(ctx.account.id);
  assert.equal(a.charges_enabled, true);
  assert.equal(a.payouts_enabled, true);
  assert.equal(a.details_submitted, true);
  assert.equal(a.capabilities.transfers, 'active');
  assert.deepEqual(a.requirements.currently_due, []);
});

await check('connect: account_link for an unknown account is StripeInvalidRequestError', async () => {
  await rejects(
    stripe.accountLinks.create({
      account: 'acct_doesnotexist',
      type: 'account_onboarding',
      refresh_url: 'https://talkpay.example/r',
      return_url: 'https://talkpay.example/x',
    }),
    Stripe.errors.StripeInvalidRequestError,
    {statusCode: 400, param: 'account'},
  );
});

// -- PaymentIntents with test cards -------------------------------------------------------------------
const intentBase = () => ({
  amount: 5000,
  currency: 'usd',
  customer: ctx.customer.id,
  automatic_payment_methods: {enabled: true, allow_redirects: 'never'},
  metadata: {run},
});

await check('payment: 4242 create then confirm succeeds', async () => {
  const pi = await stripe.paymentIntents.create(intentBase());
  assert.match(pi.id, /^pi_/);
  assert.equal(pi.status, 'requires_payment_method');
  assert.match(pi.client_secret, new RegExp(`^${pi.id}_secret_`));
  const done = await stripe.paymentIntents.confirm(pi.id, {payment_method: 'pm_card_visa'});
  assert.equal(done.status, 'succeeded');
  assert.equal(done.amount_received, 5000);
  assert.match(done.latest_charge, /^ch_/);
  const expanded = await stripe.paymentIntents.retrieve(pi.id, {expand: ['latest_charge']});
  assert.equal(expanded.latest_charge.object, 'charge');
  assert.equal(expanded.latest_charge.paid, true);
  assert.equal(expanded.latest_charge.payment_method_details.card.last4, '4242');
  ctx.paid = done;
});

await check('payment: 0002 declines with StripeCardError card_declined/generic_decline', async () => {
  const err = await rejects(
    stripe.paymentIntents.create({...intentBase(), payment_method: 'pm_card_chargeDeclined', confirm: true}),
    Stripe.errors.StripeCardError,
    {statusCode: 402, type: 'StripeCardError', rawType: 'card_error', code: 'card_declined', decline_code: 'generic_decline'},
  );
  assert.match(err.charge, /^ch_/, 'error.charge');
  assert.equal(err.payment_intent.object, 'payment_intent');
  assert.equal(err.payment_intent.status, 'requires_payment_method');
  assert.equal(err.payment_intent.last_payment_error.decline_code, 'generic_decline');
  assert.match(err.doc_url, /^https:\/\/stripe\.com\/docs\/error-codes/);
  const pi = await stripe.paymentIntents.retrieve(err.payment_intent.id);
  assert.equal(pi.last_payment_error.code, 'card_declined');
  const ch = await stripe.charges.retrieve(err.charge);
  assert.equal(ch.status, 'failed');
  assert.equal(ch.failure_code, 'card_declined');
  assert.equal(ch.outcome.type, 'issuer_declined');
});

await check('payment: 9995 declines with decline_code insufficient_funds', async () => {
  await rejects(
    stripe.paymentIntents.create({
      ...intentBase(),
      payment_method: 'pm_card_chargeDeclinedInsufficientFunds',
      confirm: true,
    }),
    Stripe.errors.StripeCardError,
    {statusCode: 402, code: 'card_declined', decline_code: 'insufficient_funds'},
  );
});

await check('payment: 3-D Secure card requires_action, then succeeds once authenticated', async () => {
  const pi = await stripe.paymentIntents.create({
    ...intentBase(),
    payment_method: 'pm_card_authenticationRequired',
    confirm: true,
  });
  assert.equal(pi.status, 'requires_action');
  assert.ok(pi.next_action && typeof pi.next_action.type === 'string', 'next_action.type');
  assert.equal(pi.latest_charge, null, 'no charge before authentication');
  // the cardholder completes the challenge (Stripe.js's modal); the emulator's helper plays that part
  await emulator('POST', `/_emulator/payment_intents/${pi.id}/3ds`, {outcome: 'succeed'});
  const done = await stripe.paymentIntents.retrieve(pi.id);
  assert.equal(done.status, 'succeeded');
  assert.equal(done.next_action, null);
});

await check('payment: manual capture, then capture a smaller amount', async () => {
  const pi = await stripe.paymentIntents.create({
    ...intentBase(),
    capture_method: 'manual',
    payment_method: 'pm_card_visa',
    confirm: true,
  });
  assert.equal(pi.status, 'requires_capture');
  assert.equal(pi.amount_capturable, 5000);
  const cap = await stripe.paymentIntents.capture(pi.id, {amount_to_capture: 4000});
  assert.equal(cap.status, 'succeeded');
  assert.equal(cap.amount_received, 4000);
  assert.equal(cap.amount_capturable, 0);
});

await check('payment: canceling a succeeded intent is payment_intent_unexpected_state', async () => {
  await rejects(stripe.paymentIntents.cancel(ctx.paid.id), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 400,
    code: 'payment_intent_unexpected_state',
  });
});

// -- idempotency --------------------------------------------------------------------------------------
await check('idempotency: same key and parameters replay the same object', async () => {
  const key = `conformance-${run}-replay`;
  const params = {...intentBase(), payment_method: 'pm_card_visa', confirm: true};
  const first = await stripe.paymentIntents.create(params, {idempotencyKey: key});
  const second = await stripe.paymentIntents.create(params, {idempotencyKey: key});
  assert.equal(second.id, first.id);
  assert.equal(second.lastResponse.headers['idempotent-replayed'], 'true');
  assert.equal(second.lastResponse.idempotencyKey, key);
  assert.equal(first.lastResponse.headers['idempotent-replayed'], undefined);
  const list = await stripe.paymentIntents.list({customer: ctx.customer.id, limit: 100});
  assert.equal(list.data.filter((p) => p.id === first.id).length, 1, 'one intent, not two');
});

await check('idempotency: a replayed card error is the same error', async () => {
  const key = `conformance-${run}-decline`;
  const params = {...intentBase(), payment_method: 'pm_card_chargeDeclined', confirm: true};
  const a = await rejects(stripe.paymentIntents.create(params, {idempotencyKey: key}), Stripe.errors.StripeCardError);
  const b = await rejects(stripe.paymentIntents.create(params, {idempotencyKey: key}), Stripe.errors.StripeCardError);
  assert.equal(b.payment_intent.id, a.payment_intent.id);
  assert.equal(b.charge, a.charge);
  assert.equal(b.headers['idempotent-replayed'], 'true');
});

await check('idempotency: same key, other parameters is a 400 StripeIdempotencyError', async () => {
  const key = `conformance-${run}-mismatch`;
  await stripe.customers.create({email: `a-${run}@example.com`}, {idempotencyKey: key});
  await rejects(
    stripe.customers.create({email: `b-${run}@example.com`}, {idempotencyKey: key}),
    Stripe.errors.StripeIdempotencyError,
    {statusCode: 400, type: 'StripeIdempotencyError', rawType: 'idempotency_error'},
  );
});

await check('retries: the SDK retries an injected 500 with the same idempotency key', async () => {
  await emulator('POST', '/_emulator/faults', {mode: '500', count: 1, path_prefix: '/v1/customers'});
  const c = await stripe.customers.create({email: `retry-${run}@example.com`});
  assert.match(c.id, /^cus_/);
  const found = await stripe.customers.list({email: `retry-${run}@example.com`});
  assert.equal(found.data.length, 1, 'exactly one customer after the retry');
});

// -- refunds ------------------------------------------------------------------------------------------
await check('refunds: partial, then the rest, then nothing is left', async () => {
  const pi = await stripe.paymentIntents.create({...intentBase(), payment_method: 'pm_card_visa', confirm: true});
  const part = await stripe.refunds.create({payment_intent: pi.id, amount: 1500, reason: 'requested_by_customer'});
  assert.match(part.id, /^re_/);
  assert.equal(part.status, 'succeeded');
  assert.equal(part.amount, 1500);
  assert.equal(part.charge, pi.latest_charge);
  let ch = await stripe.charges.retrieve(pi.latest_charge);
  assert.equal(ch.amount_refunded, 1500);
  assert.equal(ch.refunded, false);
  const rest = await stripe.refunds.create({charge: pi.latest_charge});
  assert.equal(rest.amount, 3500, 'a refund without amount refunds what is left');
  ch = await stripe.charges.retrieve(pi.latest_charge);
  assert.equal(ch.amount_refunded, 5000);
  assert.equal(ch.refunded, true);
  await rejects(stripe.refunds.create({payment_intent: pi.id, amount: 100}), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 400,
    code: 'charge_already_refunded',
  });
  const listed = await stripe.refunds.list({payment_intent: pi.id});
  assert.deepEqual(listed.data.map((r) => r.id).sort(), [part.id, rest.id].sort());
});

await check('refunds: more than the charge is amount_too_large', async () => {
  const pi = await stripe.paymentIntents.create({...intentBase(), payment_method: 'pm_card_visa', confirm: true});
  await rejects(stripe.refunds.create({payment_intent: pi.id, amount: 5001}), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 400,
    param: 'amount',
  });
});

// -- disputes -----------------------------------------------------------------------------------------
await check('disputes: the dispute card opens a dispute; evidence submitted; closing concedes it', async () => {
  const pi = await stripe.paymentIntents.create({
    ...intentBase(),
    payment_method: 'pm_card_createDispute',
    confirm: true,
  });
  assert.equal(pi.status, 'succeeded');
  const dp = await until('the dispute', async () => (await stripe.disputes.list({payment_intent: pi.id})).data[0]);
  assert.match(dp.id, /^d[pu]_/);
  assert.equal(dp.charge, pi.latest_charge);
  assert.equal(dp.amount, 5000);
  assert.equal(dp.reason, 'fraudulent');
  assert.equal(dp.status, 'needs_response');
  assert.equal(typeof dp.evidence_details.due_by, 'number');
  const ch = await stripe.charges.retrieve(pi.latest_charge);
  assert.equal(ch.disputed, true);
  const upd = await stripe.disputes.update(dp.id, {evidence: {uncategorized_text: 'The lesson took place.'}});
  assert.equal(upd.evidence.uncategorized_text, 'The lesson took place.');
  const closed = await stripe.disputes.close(dp.id);
  assert.equal(closed.status, 'lost');
});

// -- transfers and balances ---------------------------------------------------------------------------
const balanceOf = (b, currency = 'usd') =>
  (b.available.find((x) => x.currency === currency) || {amount: 0}).amount;

await check('transfer: to the connected account, tied to its charge with source_transaction', async () => {
  const pi = await stripe.paymentIntents.create({
    ...intentBase(),
    amount: 10000,
    payment_method: 'pm_card_bypassPending',
    confirm: true,
    transfer_group: `booking-${run}`,
  });
  const before = await stripe.balance.retrieve({}, {stripeAccount: ctx.account.id});
  const tr = await stripe.transfers.create({
    amount: 8000,
    currency: 'usd',
    destination: ctx.account.id,
    source_transaction: pi.latest_charge,
    transfer_group: `booking-${run}`,
    metadata: {run},
  });
  assert.match(tr.id, /^tr_/);
  assert.equal(tr.amount, 8000);
  assert.equal(tr.destination, ctx.account.id);
  assert.equal(tr.source_transaction, pi.latest_charge);
  assert.equal(tr.reversed, false);
  const after = await stripe.balance.retrieve({}, {stripeAccount: ctx.account.id});
  const moved =
    balanceOf(after) + (after.pending.find((x) => x.currency === 'usd') || {amount: 0}).amount -
    balanceOf(before) - (before.pending.find((x) => x.currency === 'usd') || {amount: 0}).amount;
  assert.equal(moved, 8000, 'the connected balance grew by the transfer');
  const byGroup = await stripe.transfers.list({transfer_group: `booking-${run}`});
  assert.deepEqual(byGroup.data.map((t) => t.id), [tr.id]);
  ctx.transfer = tr;
});

await check('transfer: partial reversal, then reversal list', async () => {
  const before = await stripe.balance.retrieve({}, {stripeAccount: ctx.account.id});
  const rev = await stripe.transfers.createReversal(ctx.transfer.id, {amount: 3000});
  assert.match(rev.id, /^trr_/);
  assert.equal(rev.object, 'transfer_reversal');
  assert.equal(rev.amount, 3000);
  assert.equal(rev.transfer, ctx.transfer.id);
  const tr = await stripe.transfers.retrieve(ctx.transfer.id);
  assert.equal(tr.amount_reversed, 3000);
  assert.equal(tr.reversed, false);
  const after = await stripe.balance.retrieve({}, {stripeAccount: ctx.account.id});
  assert.equal(balanceOf(before) - balanceOf(after), 3000, 'the reversal took the money back');
  const revs = await stripe.transfers.listReversals(ctx.transfer.id);
  assert.deepEqual(revs.data.map((r) => r.id), [rev.id]);
  await rejects(stripe.transfers.createReversal(ctx.transfer.id, {amount: 5001}), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 400,
  });
});

await check('transfer: beyond the available balance is balance_insufficient', async () => {
  await rejects(
    stripe.transfers.create({amount: 99999999, currency: 'usd', destination: ctx.account.id}),
    Stripe.errors.StripeInvalidRequestError,
    {statusCode: 400, code: 'balance_insufficient'},
  );
});

await check('transfer: to an account that was never onboarded is refused', async () => {
  const fresh = await stripe.accounts.create({type: 'express', country: 'US', capabilities: {transfers: {requested: true}}});
  await rejects(
    stripe.transfers.create({amount: 100, currency: 'usd', destination: fresh.id}),
    Stripe.errors.StripeInvalidRequestError,
    {statusCode: 400},
  );
});

await check('balance: platform and connected balances have Stripe\'s shape', async () => {
  for (const opts of [undefined, {stripeAccount: ctx.account.id}]) {
    const b = await stripe.balance.retrieve({}, opts);
    assert.equal(b.object, 'balance');
    assert.equal(b.livemode, false);
    for (const list of [b.available, b.pending]) {
      assert.ok(Array.isArray(list) && list.length > 0, 'available/pending are non-empty lists');
      for (const entry of list) {
        assert.equal(typeof entry.amount, 'number');
        assert.match(entry.currency, /^[a-z]{3}$/);
        assert.equal(typeof entry.source_types, 'object');
      }
    }
  }
  const txns = await stripe.balanceTransactions.list({limit: 5});
  assert.ok(txns.data.length > 0);
  for (const t of txns.data) {
    assert.match(t.id, /^txn_/);
    assert.equal(t.net, t.amount - t.fee, `${t.id}: net = amount - fee`);
  }
});

await check('payout: from the connected account\'s balance', async () => {
  const po = await stripe.payouts.create({amount: 1000, currency: 'usd'}, {stripeAccount: ctx.account.id});
  assert.match(po.id, /^po_/);
  assert.ok(['pending', 'in_transit', 'paid'].includes(po.status), po.status);
  const again = await stripe.payouts.retrieve(po.id, {}, {stripeAccount: ctx.account.id});
  assert.equal(again.amount, 1000);
  await rejects(stripe.payouts.retrieve(po.id), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 404,
    code: 'resource_missing',
  });
});

// -- lists and pagination -----------------------------------------------------------------------------
await check('lists: limit, has_more, starting_after, ending_before', async () => {
  const email = `page-${run}@example.com`;
  const made = [];
  for (let i = 0; i < 7; i++) made.push((await stripe.customers.create({email, metadata: {i: String(i)}})).id);
  const newestFirst = [...made].reverse();
  const p1 = await stripe.customers.list({email, limit: 3});
  assert.equal(p1.object, 'list');
  assert.equal(p1.url, '/v1/customers');
  assert.equal(p1.has_more, true);
  assert.deepEqual(p1.data.map((c) => c.id), newestFirst.slice(0, 3));
  const p2 = await stripe.customers.list({email, limit: 3, starting_after: p1.data[2].id});
  assert.deepEqual(p2.data.map((c) => c.id), newestFirst.slice(3, 6));
  const p3 = await stripe.customers.list({email, limit: 3, starting_after: p2.data[2].id});
  assert.deepEqual(p3.data.map((c) => c.id), newestFirst.slice(6));
  assert.equal(p3.has_more, false);
  const back = await stripe.customers.list({email, limit: 2, ending_before: p2.data[0].id});
  assert.deepEqual(back.data.map((c) => c.id), newestFirst.slice(1, 3));
  ctx.paged = {email, newestFirst};
});

await check('lists: auto-pagination (for await and autoPagingToArray)', async () => {
  const {email, newestFirst} = ctx.paged;
  const seen = [];
  for await (const c of stripe.customers.list({email, limit: 2})) seen.push(c.id);
  assert.deepEqual(seen, newestFirst);
  const arr = await stripe.customers.list({email, limit: 3}).autoPagingToArray({limit: 100});
  assert.deepEqual(arr.map((c) => c.id), newestFirst);
  const charges = await stripe.charges.list({customer: ctx.customer.id, limit: 2}).autoPagingToArray({limit: 1000});
  assert.ok(charges.length >= 8, `${charges.length} charges of the customer`);
  assert.equal(new Set(charges.map((c) => c.id)).size, charges.length, 'no charge twice');
});

// -- error types and their fields ---------------------------------------------------------------------
await check('errors: unknown id is 404 resource_missing with param id', async () => {
  const err = await rejects(stripe.customers.retrieve('cus_doesnotexist'), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 404,
    type: 'StripeInvalidRequestError',
    rawType: 'invalid_request_error',
    code: 'resource_missing',
    param: 'id',
  });
  assert.match(err.message, /cus_doesnotexist/);
});

await check('errors: missing and unknown parameters name the parameter', async () => {
  await rejects(stripe.paymentIntents.create({currency: 'usd'}), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 400,
    code: 'parameter_missing',
    param: 'amount',
  });
  await rejects(
    stripe.paymentIntents.create({amount: 1000, currency: 'usd', colour: 'red'}),
    Stripe.errors.StripeInvalidRequestError,
    {statusCode: 400, code: 'parameter_unknown', param: 'colour'},
  );
  await rejects(stripe.paymentIntents.create({amount: 10, currency: 'usd'}), Stripe.errors.StripeInvalidRequestError, {
    statusCode: 400,
    code: 'amount_too_small',
    param: 'amount',
  });
});

await check('errors: a bad key is StripeAuthenticationError (401)', async () => {
  const wrong = new Stripe('not_a_key', {host: BASE.hostname, port: Number(BASE.port), protocol: 'http', telemetry: false});
  await rejects(wrong.customers.list(), Stripe.errors.StripeAuthenticationError, {statusCode: 401});
});

await check('errors: an unknown Stripe-Account is StripePermissionError (403)', async () => {
  await rejects(stripe.balance.retrieve({}, {stripeAccount: 'acct_doesnotexist'}), Stripe.errors.StripePermissionError, {
    statusCode: 403,
  });
});

await check('errors: an injected 429 surfaces as StripeRateLimitError', async () => {
  await emulator('POST', '/_emulator/faults', {mode: '429', count: 3, path_prefix: '/v1/balance'});
  try {
    await rejects(stripe.balance.retrieve(), Stripe.errors.StripeRateLimitError, {statusCode: 429});
  } finally {
    await emulator('DELETE', '/_emulator/faults');
  }
});

// -- events and webhooks ------------------------------------------------------------------------------
await check('events: list by type and retrieve', async () => {
  const evs = await stripe.events.list({type: 'payment_intent.succeeded', limit: 100});
  const ev = evs.data.find((e) => e.data.object.id === ctx.paid.id);
  assert.ok(ev, 'payment_intent.succeeded of the paid intent');
  assert.match(ev.id, /^evt_/);
  assert.equal(ev.object, 'event');
  assert.equal(typeof ev.api_version, 'string');
  assert.equal(ev.livemode, false);
  const again = await stripe.events.retrieve(ev.id);
  assert.equal(again.type, 'payment_intent.succeeded');
  assert.equal(again.data.object.status, 'succeeded');
});

await check('webhooks: every delivery verifies with stripe.webhooks.constructEvent', async () => {
  await emulator('POST', '/_emulator/webhooks/flush?timeout=10');
  await until('deliveries', async () => deliveries.length > 0, 3000);
  const types = new Set();
  for (const d of deliveries) {
    const secret = ctx.secrets[d.path];
    assert.ok(secret, `delivery to unknown path ${d.path}`);
    assert.match(d.signature || '', /t=\d+,.*v1=[0-9a-f]{64}/, 'Stripe-Signature header');
    const ev = stripe.webhooks.constructEvent(d.body, d.signature, secret);
    assert.match(ev.id, /^evt_/);
    types.add(ev.type);
    d.event = ev;
  }
  for (const t of [
    'customer.created',
    'payment_intent.succeeded',
    'payment_intent.payment_failed',
    'charge.succeeded',
    'charge.failed',
    'charge.refunded',
    'charge.dispute.created',
    'transfer.created',
    'account.updated',
  ]) {
    assert.ok(types.has(t), `no ${t} delivered (got ${[...types].sort().join(', ')})`);
  }
  const sample = deliveries.find((d) => d.event.type === 'account.updated');
  assert.equal(sample.event.account, ctx.account.id, 'account.updated names the connected account');
  // a connected account's event is read with its Stripe-Account, as on Stripe
  const stored = await stripe.events.retrieve(sample.event.id, {}, {stripeAccount: ctx.account.id});
  assert.equal(stored.type, sample.event.type);
});

await check('webhooks: a tampered body or a wrong secret fails verification', async () => {
  const d = deliveries.find((x) => x.event);
  assert.ok(d, 'a verified delivery');
  const tampered = Buffer.from(d.body.toString().replace(/"livemode": ?false/, '"livemode": true'));
  assert.notDeepEqual(tampered, d.body);
  assert.throws(
    () => stripe.webhooks.constructEvent(tampered, d.signature, ctx.secrets[d.path]),
    Stripe.errors.StripeSignatureVerificationError,
  );
  assert.throws(
    () => stripe.webhooks.constructEvent(d.body, d.signature, 'whsec_wrong'),
    Stripe.errors.StripeSignatureVerificationError,
  );
  // an old delivery is refused by the SDK's tolerance window (300 s), as it would be with Stripe
  const header = stripe.webhooks.generateTestHeaderString({
    payload: d.body.toString(),
    secret: ctx.secrets[d.path],
    timestamp: Math.floor(Date.now() / 1000) - 3600,
  });
  assert.throws(
    () => stripe.webhooks.constructEvent(d.body, header, ctx.secrets[d.path]),
    Stripe.errors.StripeSignatureVerificationError,
  );
});

receiver.close();
const failed = results.filter((r) => !r.ok).length;
console.log(`conformance totals: ${results.length} checks, ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
