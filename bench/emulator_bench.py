"""Benchmark the Stripe emulator: PaymentIntent create + confirm (pm_card_visa) per second.

    python bench/emulator_bench.py [--seconds 5] [--clients 4]

Starts its own emulator (``--quiet``) through EmulatorProcess and drives it with the
real ``stripe`` SDK (RequestsClient, HTTP/1.1 keep-alive). One operation is
``PaymentIntent.create(amount, currency, payment_method="pm_card_visa")`` followed by
``PaymentIntent.confirm(...)`` - two HTTP requests. The single-request variant
``create(..., confirm=True)`` is reported too, and (with psutil) the emulator's own CPU time per
PaymentIntent during the multi-client run: the clients (the SDK and requests) use most of the CPU of a
small machine, so the throughput depends on what else runs there.
"""

import argparse
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stripe_emulator.testing import EmulatorProcess


def _client(url):
    import stripe

    return stripe.StripeClient(
        "sk_test_bench", base_addresses={"api": url}, max_network_retries=0, http_client=stripe.RequestsClient()
    )


def _op_two_calls(client):
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],  # confirmed server-side: no redirect methods
            "payment_method": "pm_card_visa",
        }
    )
    pi = client.v1.payment_intents.confirm(pi.id)
    assert pi.status == "succeeded", pi.status


def _op_one_call(client):
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert pi.status == "succeeded", pi.status


OPS = {"create+confirm": _op_two_calls, "create(confirm=true)": _op_one_call}


def _worker(url, op_name, seconds, start_evt, result_q):
    client = _client(url)
    op = OPS[op_name]
    op(client)  # warm up the connection
    start_evt.wait()
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        op(client)
        n += 1
    result_q.put(n)


def run(url, op_name, clients, seconds):
    ctx = mp.get_context("spawn")
    start_evt = ctx.Event()
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, op_name, seconds, start_evt, q)) for _ in range(clients)]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.3 * clients)  # let every worker import stripe and warm up
    t0 = time.perf_counter()
    start_evt.set()
    total = sum(q.get(timeout=seconds + 120) for _ in procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(30)
    return total / elapsed


def _server_process(emu):
    try:
        import psutil
    except ImportError:  # optional: only for the CPU figure
        return None
    return psutil.Process(emu.proc.pid)


def _cpu(proc):
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return t.user + t.system


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    print("machine: %d CPUs, python %s" % (os.cpu_count(), sys.version.split()[0]))
    with EmulatorProcess(quiet=True) as emu:
        server = _server_process(emu)
        for op_name in OPS:
            single = run(emu.url, op_name, 1, args.seconds)
            print("%-22s 1 client : %7.1f PaymentIntents/s" % (op_name, single), flush=True)
            cpu0 = _cpu(server)
            multi = run(emu.url, op_name, args.clients, args.seconds)
            cpu = _cpu(server) - cpu0
            extra = ""
            if server is not None and multi > 0:
                per_op = cpu / (multi * args.seconds) * 1000
                extra = "  (emulator CPU %.2f ms per PaymentIntent, i.e. about %d/s per core)" % (
                    per_op,
                    1000 / per_op,
                )
            print("%-22s %d clients: %7.1f PaymentIntents/s%s" % (op_name, args.clients, multi, extra), flush=True)
            emu.reset()


if __name__ == "__main__":
    main()
