from django.core.management.base import BaseCommand, CommandError

from billing.stripe_gateway import StripeGatewayError
from payouts import services
from payouts.models import StripeListenerAccount


class Command(BaseCommand):
    help = (
        "Read listeners' Connect accounts again from Stripe (flags, requirements, the transfers capability) "
        "and store them: after deploying the transfers-capability migration, or after missed webhooks. Safe to repeat."
    )

    def add_arguments(self, parser):
        parser.add_argument("accounts", nargs="*", help="Stripe account ids (acct_...); default: every account.")

    def handle(self, *args, accounts, **options):
        rows = StripeListenerAccount.objects.order_by("pk")
        if accounts:
            rows = rows.filter(stripe_account_id__in=accounts)
        refreshed = failed = 0
        for account_id in rows.values_list("stripe_account_id", flat=True).iterator():
            try:
                services.connect_account_refresh(account_id=account_id)
            except StripeGatewayError as error:
                failed += 1
                self.stderr.write(f"{account_id}: {error}")
                continue
            refreshed += 1
        not_active = StripeListenerAccount.objects.exclude(transfers_capability="active").count()
        self.stdout.write(
            f"{refreshed} account(s) read from Stripe, {failed} could not be; "
            f"{not_active} account(s) without an active transfers capability."
        )
        if failed:
            raise CommandError(f"{failed} account(s) could not be read from Stripe: run it again.")
