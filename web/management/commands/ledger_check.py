"""`manage.py ledger_check`: run every invariant check of the books, print a report, exit non-zero on
any problem. It lives in `web`, the layer that sees every app, and imports each app's checks by name:
a missing module is an import error here, never a check silently skipped."""

from django.core.management.base import BaseCommand, CommandError

from billing.invariants import CHECKS as BILLING_CHECKS
from payouts.invariants import CHECKS as PAYOUT_CHECKS
from subscriptions.invariants import CHECKS as SUBSCRIPTION_CHECKS
from workers.metrics import ledger_check_record


def all_checks() -> list:
    return [*BILLING_CHECKS, *PAYOUT_CHECKS, *SUBSCRIPTION_CHECKS]


class Command(BaseCommand):
    help = "Check the ledger's invariants; exit 1 with a report when one fails."

    def handle(self, *args, **options):
        failed = 0
        found: dict[str, int] = {}
        for check in all_checks():
            name = f"{check.__module__}.{check.__name__}"
            problems = check()
            found[name] = len(problems)
            if problems:
                failed += 1
                self.stdout.write(self.style.ERROR(f"FAIL {name}: {len(problems)} problem(s)"))
                for problem in problems:
                    self.stdout.write(f"  - {problem}")
            else:
                self.stdout.write(self.style.SUCCESS(f"ok   {name}"))
        # The metrics (talkpay_ledger_check_problems) and the alert on them read the last run's results.
        ledger_check_record(found)
        if failed:
            raise CommandError(f"{failed} ledger check(s) failed")
        self.stdout.write(self.style.SUCCESS("ledger clean"))
