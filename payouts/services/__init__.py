"""Writes of the payouts app, one module per seam:

- `earnings`: listener earnings (create, reverse, hold, release) and an operator's hold on a listener;
- `connect`: Connect accounts and onboarding;
- `runs`: payout runs (collect, then execute), the sweeper and an operator's retry;
- `transfers`: claiming payouts, sending their transfers, recording what Stripe answered;
- `reversals`: transfer reversals, whoever made them;
- `clawbacks`: taking back what was paid out for money the talker got back, and debts;
- `sql`: the PostgreSQL statements of the batches beside their portable fallbacks.

This package is also the payouts owner billing calls (`billing.owners.PayoutsOwner`).

How a payout is paid exactly once
---------------------------------
1. **Collect** (`payouts_collect`, in batches of listeners, one transaction per batch). The batch's
   listener rows are locked `FOR NO KEY UPDATE SKIP LOCKED`, so two runs never collect the same
   listener at once (the other run skips it and finds nothing left afterwards). The listener's payable
   earnings are attached to the payout of (listener, schedule, period) — unique in the database — and
   the payout's amount is the sum of what is attached. Below the minimum nothing is attached: the
   earnings roll over to the next period. Listeners whose Connect account cannot take a transfer
   (not onboarded, payouts disabled, or the `transfers` capability not active) are not collected:
   their earnings stay in the pool, counted in the run's `held`, until Stripe says the account is ready.
2. **Execute** (`payouts_execute`, 100 payouts at a time). A short transaction locks the batch
   (`SKIP LOCKED`: concurrent runs split the work) and moves its payouts PENDING → PROCESSING,
   counting the attempt. In that transaction the payouts' earnings are locked first (earning before
   payout) and checked again (DESIGN money rule 5): those refunded, disputed, held by an operator or
   with a refund in flight since collect go back to the pool and the amount is recomputed, for the
   whole batch in a few queries. An earning shrunk while its transfer is in flight is clawed back
   once the transfer is recorded (a failed transfer cancels the clawback). Only then is Stripe
   called, outside any transaction, a few transfers at a time, each with the idempotency key of its
   attempt; a second short transaction records the transfers, marks the earnings paid and books the
   ledger. A payout still PENDING has therefore never reached Stripe. A PROCESSING payout may have:
   before sending it again we look its transfer up by `transfer_group`, which works after Stripe's
   24-hour idempotency window, and within the window the same key would return the same transfer
   anyway.

   Why batches inside the run rather than one Celery task per payout: each payout then costs one
   Stripe call and a tenth of a query instead of two commits and ~14 queries (measured with
   bench/payout_bench.py: 44 payouts/s one by one, 300+ payouts/s batched on a 2-core machine).
   In a run the batches go through `transfers.TransferPipeline`: a batch's transfers are in flight
   while the next batch is claimed and the one before recorded, and Stripe's available balance is read
   once and tracked (read again, with nothing in flight, before a payout is deferred for want of it).
   `payout_execute` (one payout) remains for the admin, the tasks and the sweeper.
3. A refused transfer (restricted account, transfers capability not active) marks the payout FAILED
   with Stripe's reason and releases all its earnings, held ones included: the next run (or a re-run
   of the period, which reuses the failed row) collects those payable again. Refused for the
   capability (`insufficient_capabilities_for_transfer`: it moved after our last look), the account is
   also read back from Stripe, so the runs hold the listener until it is active again. An account we
   already know cannot receive fails its claimed payout the same way before Stripe is called ("Held: ").
   Want of available platform balance defers the payout instead (`transfers.DEFERRED`). A timeout leaves the
   payout PROCESSING for the sweeper, which resends only after the lookup.
"""

from payouts.services.clawbacks import (
    clawback_execute,
    clawback_request,
    clawbacks_sweep_pending,
    debt_net_into_payout,
    debt_outstanding,
)
from payouts.services.connect import (
    connect_account_get_or_create,
    connect_account_known,
    connect_account_payout_failed,
    connect_account_refresh,
    connect_account_sync,
    connect_dashboard_url,
    connect_onboarding_link_create,
)
from payouts.services.earnings import (
    earning_create_for_payment,
    earning_hold,
    earning_lock,
    earning_release,
    earning_reverse,
    earning_session_completed,
    listener_payouts_hold,
    listener_payouts_release,
)
from payouts.services.reversals import payout_transfer_reversed
from payouts.services.runs import BATCH_SIZE, RunSummary, payout_retry, payout_run, payouts_collect, payouts_sweep_stuck
from payouts.services.transfers import (
    EXECUTE_BATCH,
    payout_execute,
    payout_transfer_failed,
    payouts_execute,
    payouts_transfer_record,
    transfer_idempotency_key,
)

__all__ = [
    "BATCH_SIZE",
    "EXECUTE_BATCH",
    "RunSummary",
    "clawback_execute",
    "clawback_request",
    "clawbacks_sweep_pending",
    "connect_account_get_or_create",
    "connect_account_known",
    "connect_account_payout_failed",
    "connect_account_refresh",
    "connect_account_sync",
    "connect_dashboard_url",
    "connect_onboarding_link_create",
    "debt_net_into_payout",
    "debt_outstanding",
    "earning_create_for_payment",
    "earning_hold",
    "earning_lock",
    "earning_release",
    "earning_reverse",
    "earning_session_completed",
    "listener_payouts_hold",
    "listener_payouts_release",
    "payout_execute",
    "payout_retry",
    "payout_run",
    "payout_transfer_failed",
    "payout_transfer_reversed",
    "payouts_collect",
    "payouts_execute",
    "payouts_sweep_stuck",
    "payouts_transfer_record",
    "transfer_idempotency_key",
]
