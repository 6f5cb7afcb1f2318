"""The books' invariant checks, run as one: by `manage.py ledger_check` and by the daily beat job
(`web.tasks.ledger_check_task`). It lives in `web`, the layer that sees every app, and imports each
app's checks by name: a missing module is an import error here, never a check silently skipped.

Every run records its results where the metrics read them (`talkpay_ledger_check_problems` by check,
`talkpay_ledger_check_last_run_timestamp_seconds`) and logs one line with the counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from billing.invariants import CHECKS as BILLING_CHECKS
from payouts.invariants import CHECKS as PAYOUT_CHECKS
from subscriptions.invariants import CHECKS as SUBSCRIPTION_CHECKS
from workers.metrics import ledger_check_record

logger = logging.getLogger(__name__)


def all_checks() -> list:
    return [*BILLING_CHECKS, *PAYOUT_CHECKS, *SUBSCRIPTION_CHECKS]


@dataclass(frozen=True)
class LedgerCheckReport:
    # check name (module.function) → the problems it found, in the order the checks ran
    problems: dict[str, list[str]]

    @property
    def failed(self) -> list[str]:
        return [name for name, found in self.problems.items() if found]

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self) -> str:
        lines = []
        for name, found in self.problems.items():
            lines.append(f"FAIL {name}: {len(found)} problem(s)" if found else f"ok   {name}")
            lines += [f"  - {problem}" for problem in found]
        return "\n".join(lines)


def ledger_check_run() -> LedgerCheckReport:
    report = LedgerCheckReport({f"{check.__module__}.{check.__name__}": list(check()) for check in all_checks()})
    ledger_check_record({name: len(found) for name, found in report.problems.items()})
    counts = {name: len(found) for name, found in report.problems.items() if found}
    if report.ok:
        logger.info("ledger check clean", extra={"ledger_checks": len(report.problems)})
    else:
        logger.error("ledger check failed", extra={"ledger_checks_failed": counts})
    return report
