# Clawbacks belong to payouts now: their models leave billing's state; the tables stay as they are
# (payouts.0004 takes them over under the same names), so no data moves.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_refund_dispute_clawback"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ClawbackRecovery"),
                migrations.DeleteModel(name="Clawback"),
            ],
            database_operations=[],
        ),
    ]
