import factory

from billing.models import Payment
from booking.tests.factories import BookingFactory


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    booking = factory.SubFactory(BookingFactory)
    talker = factory.LazyAttribute(lambda p: p.booking.talker)
    currency = "usd"
    amount = factory.LazyAttribute(lambda p: p.booking.total_amount)
    app_fee = factory.LazyAttribute(lambda p: p.booking.app_fee)
    listener_amount = factory.LazyAttribute(lambda p: p.booking.listener_amount)
