"""Command line entry point: ``python -m stripe_emulator``."""

import argparse
import gc
import os
import signal
import sys
import threading

from .core import DEFAULT_CONFIG, Emulator
from .httpserver import HTTPServer
from .stripejs import BrowserFront


def _prob(v):
    f = float(v)
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return f


def _positive(v):
    f = float(v)
    if f <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return f


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m stripe_emulator", description="Stateful Stripe API emulator with signed webhooks."
    )
    p.add_argument(
        "--host",
        default=os.environ.get("STRIPE_EMULATOR_HOST", "127.0.0.1"),
        help="address to bind (default 127.0.0.1; env STRIPE_EMULATOR_HOST)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("STRIPE_EMULATOR_PORT", "12111")),
        help="port to listen on (default 12111; 0 = any free port; env STRIPE_EMULATOR_PORT)",
    )
    p.add_argument("--quiet", action="store_true", help="do not log one line per request")
    p.add_argument(
        "--time-scale",
        type=_positive,
        default=DEFAULT_CONFIG["time_scale"],
        help="multiplier for every emulated delay: webhook retries, dispute opening, payouts (0.01 = 100x faster)",
    )
    funds = p.add_mutually_exclusive_group()
    funds.add_argument(
        "--funds-pending",
        dest="funds_pending",
        action="store_true",
        default=DEFAULT_CONFIG["funds_pending"],
        help="(the default, as on Stripe) charge funds land in the pending balance and become available "
        "--funds-delay seconds of emulated time later (POST /_emulator/clock/advance moves time on)",
    )
    funds.add_argument(
        "--funds-available",
        dest="funds_pending",
        action="store_false",
        help="charge funds go straight to the available balance (not like Stripe)",
    )
    p.add_argument(
        "--funds-delay",
        type=float,
        default=float(os.environ.get("STRIPE_EMULATOR_FUNDS_DELAY") or DEFAULT_CONFIG["funds_delay"]),
        help="seconds of emulated time from a charge to its funds being available "
        "(default 172800: 2 days, a US account in test mode; not multiplied by --time-scale; "
        "env STRIPE_EMULATOR_FUNDS_DELAY)",
    )
    p.add_argument(
        "--webhook-url",
        default=os.environ.get("STRIPE_EMULATOR_WEBHOOK_URL"),
        help="pre-register a webhook endpoint for all events (env STRIPE_EMULATOR_WEBHOOK_URL)",
    )
    p.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_EMULATOR_WEBHOOK_SECRET"),
        help="signing secret (whsec_...) for --webhook-url (env STRIPE_EMULATOR_WEBHOOK_SECRET); "
        "random if omitted, printed at start",
    )
    p.add_argument(
        "--connect-webhook-url",
        default=os.environ.get("STRIPE_EMULATOR_CONNECT_WEBHOOK_URL"),
        help="pre-register a Connect endpoint (connect=true): it receives the connected accounts' events, "
        "which --webhook-url does not (env STRIPE_EMULATOR_CONNECT_WEBHOOK_URL)",
    )
    p.add_argument(
        "--connect-webhook-secret",
        default=os.environ.get("STRIPE_EMULATOR_CONNECT_WEBHOOK_SECRET"),
        help="signing secret for --connect-webhook-url (env STRIPE_EMULATOR_CONNECT_WEBHOOK_SECRET); "
        "random if omitted, printed at start",
    )
    p.add_argument(
        "--webhook-max-attempts",
        type=int,
        default=DEFAULT_CONFIG["webhook_max_attempts"],
        help="delivery attempts per event and endpoint (default 8)",
    )
    p.add_argument(
        "--webhook-retry-base",
        type=float,
        default=DEFAULT_CONFIG["webhook_retry_base"],
        help="seconds before the first retry, doubling each time, times --time-scale (default 10)",
    )
    p.add_argument(
        "--webhook-timeout",
        type=_positive,
        default=DEFAULT_CONFIG["webhook_timeout"],
        help="seconds to wait for a webhook receiver before counting a failed attempt (default 10)",
    )
    p.add_argument("--webhook-workers", type=int, default=4, help="webhook delivery threads (default 4)")
    p.add_argument("--chaos-duplicate", type=_prob, default=0.0, help="probability an event is delivered twice")
    p.add_argument(
        "--chaos-reorder",
        type=_prob,
        default=0.0,
        help="probability an event is held back and delivered after the next one",
    )
    p.add_argument("--chaos-delay", type=_prob, default=0.0, help="probability an event is delivered late")
    p.add_argument(
        "--chaos-max-delay",
        type=float,
        default=DEFAULT_CONFIG["chaos_max_delay"],
        help="maximum extra delay in seconds for --chaos-delay (default 2)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed for the chaos decisions")
    p.add_argument(
        "--hang-seconds",
        type=float,
        default=DEFAULT_CONFIG["hang_seconds"],
        help="default duration of a 'hang' fault (default 30)",
    )
    p.add_argument(
        "--dispute-delay",
        type=float,
        default=DEFAULT_CONFIG["dispute_delay"],
        help="seconds (times --time-scale) before a 4000000000000259 charge is disputed (default 2)",
    )
    p.add_argument(
        "--capture-delay",
        type=float,
        default=DEFAULT_CONFIG["capture_delay"],
        help="seconds (times --time-scale) before a captured charge gets its balance_transaction and "
        "transfer, announced by charge.updated (default 0.5)",
    )
    p.add_argument(
        "--payout-delay",
        type=float,
        default=DEFAULT_CONFIG["payout_delay"],
        help="seconds (times --time-scale) before a payout is paid or failed (default 2)",
    )
    p.add_argument(
        "--state-file",
        default=os.environ.get("STRIPE_EMULATOR_STATE_FILE"),
        help="keep the state in this file across restarts (see snapshot.py; env STRIPE_EMULATOR_STATE_FILE)",
    )
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    # the state is many small long-lived dicts: collect cyclic garbage less often
    gc.set_threshold(100_000, 50, 100)
    if args.webhook_secret and not args.webhook_url:
        sys.stderr.write("stripe_emulator: --webhook-secret given without --webhook-url; ignoring it\n")
    if args.connect_webhook_secret and not args.connect_webhook_url:
        sys.stderr.write("stripe_emulator: --connect-webhook-secret given without --connect-webhook-url; ignoring it\n")
    config = {
        "time_scale": args.time_scale,
        "funds_pending": args.funds_pending,
        "funds_delay": max(0.0, args.funds_delay),
        "chaos_duplicate": args.chaos_duplicate,
        "chaos_reorder": args.chaos_reorder,
        "chaos_delay": args.chaos_delay,
        "chaos_max_delay": args.chaos_max_delay,
        "webhook_max_attempts": max(1, args.webhook_max_attempts),
        "webhook_retry_base": args.webhook_retry_base,
        "webhook_timeout": args.webhook_timeout,
        "hang_seconds": args.hang_seconds,
        "quiet": args.quiet,
        "seed": args.seed,
        "dispute_delay": args.dispute_delay,
        "capture_delay": args.capture_delay,
        "payout_delay": args.payout_delay,
    }
    emu = Emulator(config, webhook_workers=args.webhook_workers)
    from .core import rand

    for url, secret, connect in (
        (args.webhook_url, args.webhook_secret, False),
        (args.connect_webhook_url, args.connect_webhook_secret, True),
    ):
        if url:
            emu.preregistered.append((url, secret or "whsec_" + rand(32), connect))
    if emu.preregistered:
        emu.reset(keep_webhooks=False, reset_config=False)
    writer = None
    if args.state_file:
        from .snapshot import SnapshotWriter, snapshot_load

        restored = snapshot_load(emu, args.state_file)
        sys.stderr.write(
            "stripe_emulator state %s %s\n" % ("restored from" if restored else "will be kept in", args.state_file)
        )
        writer = SnapshotWriter(emu, args.state_file).start()
    server = HTTPServer(args.host, args.port, BrowserFront(emu), quiet=args.quiet)
    sys.stderr.write(
        "stripe_emulator listening on http://%s:%d (api version %s)\n"
        % (server.host, server.port, __import__("stripe_emulator").API_VERSION)
    )
    for url, secret, connect in emu.preregistered:
        sys.stderr.write(
            "stripe_emulator %swebhook endpoint %s secret %s\n" % ("Connect " if connect else "", url, secret)
        )
    sys.stderr.flush()

    def _stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
        if writer is not None:
            writer.stop()


if __name__ == "__main__":
    main()
