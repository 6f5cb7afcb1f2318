"""The retry policy every task shares: transient errors (Stripe's, the database's) back off with
jitter, others fail."""

import logging
import random

from celery import Task

logger = logging.getLogger(__name__)

# Seconds before retry n (0-based): exponential, capped, with full jitter so a burst of failures
# after an outage does not come back as a synchronized burst.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0


def backoff_seconds(retries: int) -> float:
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2**retries))
    return random.uniform(ceiling / 2, ceiling)


# PostgreSQL's codes for failures that the same transaction, run again, normally does not meet:
# deadlock, serialization failure, lock timeout, and a connection the server ended or lost
# (an operator's pg_terminate_backend, a restart).
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "55P03", "57P01", "57P02", "57P03"})
DATABASE_RETRY_MAX = 5


def db_error_is_transient(error: BaseException) -> bool:
    from django.db import InterfaceError, OperationalError

    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    if isinstance(error, InterfaceError):
        return True  # "connection already closed": the next try opens a new one
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None) or ""
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")


class TalkpayTask(Task):
    """Every Talkpay task: a deadlock, a serialization failure or a dropped database connection is
    transient, so the task is retried with backoff (it is idempotent) instead of dying with it.
    Celery closes an unusable connection before each task, so the retry starts on a fresh one."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:
            if not db_error_is_transient(error) or self.request.called_directly:
                raise
            logger.warning("task %s hit a transient database error, retrying: %s", self.name, error)
            from django.db import connection

            connection.close()
            retries = self.request.retries
            raise self.retry(
                exc=error,
                countdown=backoff_seconds(retries),
                max_retries=max(self.max_retries or 0, DATABASE_RETRY_MAX),
            ) from error
