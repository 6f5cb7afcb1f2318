"""`seed_demo`, run by `make run`: packages, demo users and subscription plans, idempotent."""

import pytest
from django.core.management import CommandError, call_command

from booking.models import BookingPackage
from subscriptions.models import SubscriptionPlan
from web.models import User

pytestmark = pytest.mark.django_db


def test_the_demo_seed_sells_a_weekly_and_a_monthly_plan_once(settings):
    settings.DEBUG = True

    call_command("seed_demo")
    call_command("seed_demo")

    plans = sorted((plan.package.duration_minutes, plan.interval) for plan in SubscriptionPlan.objects.all())
    assert plans == [(20, "week"), (60, "month")]
    assert BookingPackage.objects.count() == 3
    assert set(User.objects.values_list("username", flat=True)) >= {"talker", "listener", "admin"}


def test_production_gets_the_packages_only(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("seed_demo")

    call_command("seed_demo", "--no-users")

    assert BookingPackage.objects.count() == 3
    assert not SubscriptionPlan.objects.exists() and not User.objects.exists()
