from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from booking.models import BookingPackage
from subscriptions.models import SubscriptionPlan
from web.models import User

DEFAULT_PACKAGES = [
    ("20 Minute Session", 20, "30.00", "A short check-in."),
    ("40 Minute Session", 40, "50.00", "Time to talk it through."),
    ("60 Minute Session", 60, "70.00", "A full hour."),
]

DEMO_USERS = [
    ("talker", "talker@example.com", User.Role.TALKER),
    ("listener", "listener@example.com", User.Role.LISTENER),
]
DEMO_PASSWORD = "talkpay-demo-123"
# Subscription plans for the demo: (package minutes, interval). Priced as the package.
DEMO_PLANS = [(20, "week"), (60, "month")]


class Command(BaseCommand):
    help = "Seed the default packages and the demo talker and listener (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-users", action="store_true", help="Only the packages.")

    @transaction.atomic
    def handle(self, *args, **options):
        if not options["no_users"] and not settings.DEBUG:
            # Their password is published in this file: never on a production database.
            raise CommandError("Demo users need DJANGO_DEBUG=true; use --no-users for the packages only.")
        for name, minutes, price, description in DEFAULT_PACKAGES:
            _, created = BookingPackage.objects.get_or_create(
                duration_minutes=minutes,
                defaults={"name": name, "price": price, "app_fee_percentage": "10.00", "description": description},
            )
            if created:
                self.stdout.write(f"package: {name} ${price}")
        if options["no_users"]:
            return
        for username, email, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"email": email, "role": role})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            self.stdout.write(f"demo {role}: username={username} password={DEMO_PASSWORD} id={user.pk}")
        for minutes, interval in DEMO_PLANS:
            # Demo only: which plans a marketplace sells is an operator's choice (admin).
            plan, created = SubscriptionPlan.objects.get_or_create(
                package=BookingPackage.objects.get(duration_minutes=minutes), interval=interval
            )
            if created:
                self.stdout.write(f"subscription plan: {plan}")
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD, role=User.Role.TALKER)
        self.stdout.write(f"admin: username=admin password={DEMO_PASSWORD} ({settings.PUBLIC_BASE_URL}/admin/)")
