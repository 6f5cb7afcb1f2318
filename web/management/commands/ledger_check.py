"""`manage.py ledger_check`: run every invariant check of the books (web/ledger_check.py), print a
report, exit non-zero on any problem. Beat runs the same checks daily (web.tasks.ledger_check_task)."""

from django.core.management.base import BaseCommand, CommandError

from web.ledger_check import ledger_check_run


class Command(BaseCommand):
    help = "Check the ledger's invariants; exit 1 with a report when one fails."

    def handle(self, *args, **options):
        report = ledger_check_run()
        for line in report.text().splitlines():
            if line.startswith("FAIL"):
                line = self.style.ERROR(line)
            elif line.startswith("ok"):
                line = self.style.SUCCESS(line)
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"{len(report.failed)} ledger check(s) failed")
        self.stdout.write(self.style.SUCCESS("ledger clean"))
