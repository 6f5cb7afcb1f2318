from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tabulate import tabulate
from tqdm import tqdm

from billing import money
from payouts import selectors, services
from payouts.models import Payout, Schedule
from payouts.periods import PeriodError, period_last_closed, period_parse


class Command(BaseCommand):
    help = "Pay one period of a payout schedule by hand (the beat job does the same). Safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("--schedule", choices=[s.value for s in Schedule], default=Schedule.WEEKLY)
        parser.add_argument(
            "--period",
            help="A day inside the period (2026-11-18), an ISO week (2026-W47) or a month (2026-11). "
            "`current` for the period running now (with --allow-open). Default: the last closed period.",
        )
        parser.add_argument(
            "--allow-open",
            action="store_true",
            help="DEBUG only, for demonstrations: pay a period that has not ended yet (what is payable now). "
            "Its payout is then the period's one; earnings made later in it are paid by the next period's run.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would be paid; change nothing.")

    def handle(self, *args, schedule, period, dry_run, allow_open=False, **options):
        if allow_open and not settings.DEBUG:
            raise CommandError("--allow-open is for demonstrations only: it needs DJANGO_DEBUG=true.")
        if period == "current":
            period = timezone.localdate().isoformat()
        try:
            target = period_parse(schedule, period) if period else period_last_closed(schedule, timezone.now())
        except PeriodError as error:
            raise CommandError(str(error))
        if not target.is_closed(timezone.now()) and not allow_open:
            raise CommandError(
                f"{target.label} ({target.start}..{target.end}) has not ended yet"
                " (to demonstrate a payout now: --period current --allow-open, DEBUG only)."
            )
        due = selectors.earnings_payable(schedule=schedule, cutoff=target.cutoff).values("listener_id").distinct()
        with tqdm(total=due.count(), unit="listener", desc="collect", disable=None, file=self.stderr) as bar:
            summary = services.payout_run(period=target, dry_run=dry_run, execute=False, progress=bar.update)
        if not dry_run:
            to_send = Payout.objects.filter(
                schedule=schedule,
                period_start=target.start,
                status__in=(Payout.Status.PENDING, Payout.Status.PROCESSING),
            ).count()
            with tqdm(total=to_send, unit="payout", desc="transfer", disable=None, file=self.stderr) as bar:
                executed = services.payout_run(period=target, progress=bar.update)
            for name in (
                "paid",
                "failed",
                "in_flight",
                "errors",
                "amount_paid",
                "failures",
                "deferred",
                "amount_deferred",
                "deferrals",
            ):
                setattr(summary, name, getattr(executed, name))
        rows = [
            ("period", f"{target.label} ({target.start} .. {target.end})"),
            ("mode", "dry run (nothing changed)" if dry_run else "executed"),
            ("listeners with payable earnings", summary.listeners),
            ("rolled over (below minimum)", summary.rolled_over),
            ("payouts created", summary.payouts_created),
            ("amount to pay" if dry_run else "amount collected", money.format_amount(summary.amount_planned)),
            ("held (Connect account cannot receive transfers)", sum(summary.held.values())),
        ]
        if not dry_run:
            rows += [
                ("paid", summary.paid),
                ("amount paid", money.format_amount(summary.amount_paid)),
                ("failed", summary.failed),
                ("deferred (Stripe funds not available yet)", summary.deferred),
                ("amount deferred", money.format_amount(summary.amount_deferred)),
                ("in flight (sweeper resends)", summary.in_flight),
                ("errors", summary.errors),
            ]
        self.stdout.write(tabulate(rows, headers=("", schedule), tablefmt="simple"))
        for reason, count in summary.held.items():
            self.stdout.write(f"{count} listener(s) held: {reason}")
        for payout_id, reason in summary.failures.items():
            self.stdout.write(f"payout #{payout_id} failed: {reason}")
        for payout_id, reason in summary.deferrals.items():
            self.stdout.write(f"payout #{payout_id} {reason[0].lower()}{reason[1:]}")
