"""`manage.py ledger_check`: run every invariant check of the books, print a report, exit non-zero on
any problem (billing's `CHECKS`, plus `payouts.invariants.CHECKS` when that module exists)."""

import importlib

from django.core.management.base import BaseCommand, CommandError

from billing.invariants import CHECKS as BILLING_CHECKS

OPTIONAL_CHECK_MODULES = ("payouts.invariants",)


def all_checks() -> list:
    checks = list(BILLING_CHECKS)
    for module_name in OPTIONAL_CHECK_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if error.name != module_name:
                raise
            continue
        checks.extend(getattr(module, "CHECKS", []))
    return checks


class Command(BaseCommand):
    help = "Check the ledger's invariants; exit 1 with a report when one fails."

    def handle(self, *args, **options):
        failed = 0
        for check in all_checks():
            name = f"{check.__module__}.{check.__name__}"
            problems = check()
            if problems:
                failed += 1
                self.stdout.write(self.style.ERROR(f"FAIL {name}: {len(problems)} problem(s)"))
                for problem in problems:
                    self.stdout.write(f"  - {problem}")
            else:
                self.stdout.write(self.style.SUCCESS(f"ok   {name}"))
        if failed:
            raise CommandError(f"{failed} ledger check(s) failed")
        self.stdout.write(self.style.SUCCESS("ledger clean"))
