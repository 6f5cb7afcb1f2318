"""The Stripe emulator (standard library only): one Emulator composed of a mixin per concern.

state (stores, indexes, balances, ids, time), render (lists, expand), router (the route decorator, auth,
idempotency), faults, and one module per resource. Every /v1 route is declared with @route beside its handler.
"""

import random
import sys
import threading

from ..webhooks import Deliverer, Scheduler, Work
from .accounts import AccountsMixin
from .balance import BalanceMixin
from .charges import ChargesMixin
from .charging import ChargingMixin
from .customers import CustomersMixin
from .disputes import DisputesMixin
from .events import EventsMixin
from .faults import FaultsMixin
from .payment_intents import PaymentIntentsMixin
from .payment_methods import PaymentMethodsMixin
from .products import ProductsMixin
from .render import RenderMixin
from .router import RouterMixin, route
from .search import SearchMixin
from .setup_intents import SetupIntentsMixin
from .state import Ctx, StateMixin, address_from, empty_address, jcopy, luhn_ok, not_found, rand, stripe_fee
from .subscription_pause import SubscriptionPauseMixin
from .subscription_schedules import SubscriptionSchedulesMixin
from .subscriptions import SubscriptionsMixin
from .tables import (
    ALNUM,
    API_VERSION,
    CARD_TOKENS,
    CARDS,
    COUNTRY_CURRENCY,
    CURRENCY_MIN,
    DECLINES,
    DEFAULT_CONFIG,
    EVIDENCE_FIELDS,
    INITIAL_REQUIREMENTS,
    PM_TOKENS,
    PREFIX_TYPE,
    ZERO_DECIMAL,
)
from .test_clocks import TestClocksMixin
from .transfers import TransfersMixin

__all__ = [
    "ALNUM",
    "API_VERSION",
    "CARDS",
    "CARD_TOKENS",
    "COUNTRY_CURRENCY",
    "CURRENCY_MIN",
    "DECLINES",
    "DEFAULT_CONFIG",
    "EVIDENCE_FIELDS",
    "INITIAL_REQUIREMENTS",
    "PM_TOKENS",
    "PREFIX_TYPE",
    "ZERO_DECIMAL",
    "Ctx",
    "Emulator",
    "address_from",
    "empty_address",
    "jcopy",
    "luhn_ok",
    "not_found",
    "rand",
    "route",
    "stripe_fee",
]


class Emulator(
    # Schedules hook the subscriptions' and clocks' _sub_due, _clock_run and _sub_end.
    SubscriptionPauseMixin,
    SubscriptionSchedulesMixin,
    # Subscriptions first: they hook _emit (invoice PaymentIntents) and _expand_path (includable fields).
    SubscriptionsMixin,
    TestClocksMixin,
    ProductsMixin,
    SetupIntentsMixin,
    RouterMixin,
    FaultsMixin,
    StateMixin,
    RenderMixin,
    EventsMixin,
    CustomersMixin,
    PaymentMethodsMixin,
    PaymentIntentsMixin,
    ChargingMixin,
    ChargesMixin,
    DisputesMixin,
    AccountsMixin,
    TransfersMixin,
    BalanceMixin,
    SearchMixin,
):
    def __init__(self, config=None, webhook_workers=4, log=None):
        cfg = dict(DEFAULT_CONFIG)
        cfg.update(config or {})
        self.base_config = dict(cfg)
        self.config = cfg
        self.lock = threading.RLock()
        self.log = log or sys.stderr
        self._log_lock = threading.Lock()
        self.rng = random.Random(cfg.get("seed"))
        self.work = Work()
        self.scheduler = Scheduler(self.work)
        self.deliverer = Deliverer(self, workers=webhook_workers)
        self.faults = []
        self.fault_lock = threading.Lock()
        self.hang_abort = threading.Event()
        self.preregistered = []  # (url, secret, connect) from the CLI / env
        self._build_routes()
        self._reset_state()
