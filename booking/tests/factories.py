from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from billing import money
from booking.models import Booking, BookingPackage
from web.tests.factories import ListenerFactory, TalkerFactory


class PackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BookingPackage

    name = factory.Sequence(lambda n: f"Package {n}")
    duration_minutes = 20
    price = Decimal("30.00")
    app_fee_percentage = Decimal("10.00")
    description = "A session."
    is_active = True


class BookingFactory(factory.django.DjangoModelFactory):
    """A booking with its split; pass `status` for other lifecycle points. No payment row: use
    billing's PaymentFactory (or booking_create) when the payment matters."""

    class Meta:
        model = Booking

    talker = factory.SubFactory(TalkerFactory)
    listener = factory.SubFactory(ListenerFactory)
    package = factory.SubFactory(PackageFactory)
    scheduled_at = factory.Sequence(lambda n: timezone.now() + timedelta(days=1, hours=n))
    ends_at = factory.LazyAttribute(lambda b: b.scheduled_at + timedelta(minutes=b.package.duration_minutes))
    total_amount = factory.LazyAttribute(lambda b: money.to_cents(b.package.price))
    app_fee = factory.LazyAttribute(lambda b: money.split(b.total_amount, b.package.app_fee_percentage).app_fee)
    listener_amount = factory.LazyAttribute(lambda b: b.total_amount - b.app_fee)
