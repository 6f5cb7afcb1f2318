from django.core.management.base import BaseCommand

from workers.schedules import schedules_write


class Command(BaseCommand):
    help = "Write Talkpay's periodic jobs (payout runs, sweepers) into django-celery-beat's tables."

    def handle(self, *args, **options):
        for name in schedules_write():
            self.stdout.write(f"scheduled: {name}")
