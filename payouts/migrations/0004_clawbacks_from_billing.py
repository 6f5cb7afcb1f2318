# Clawbacks move from billing to payouts: state only, over the tables billing created.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_clawbacks_move_to_payouts"),
        ("payouts", "0003_connect_sync_and_payout_attempts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Clawback",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("key", models.CharField(max_length=100, unique=True)),
                        ("amount", models.BigIntegerField()),
                        ("currency", models.CharField(default="usd", max_length=3)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending (reversal not yet attempted)"),
                                    ("reversed", "Reversed on Stripe"),
                                    ("debt", "Debt (reversal refused; netted in the next payouts)"),
                                    ("recovered", "Recovered from later payouts"),
                                ],
                                db_index=True,
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("stripe_transfer_reversal_id", models.CharField(blank=True, max_length=255, null=True, unique=True)),
                        ("amount_recovered", models.BigIntegerField(default=0)),
                        ("failure_reason", models.CharField(blank=True, default="", max_length=255)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "earning",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="clawbacks",
                                to="payouts.listenerpayout",
                            ),
                        ),
                        (
                            "listener",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="clawbacks",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "payout",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT, related_name="clawbacks", to="payouts.payout"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_clawback",
                        "ordering": ("-created_at", "-id"),
                        "constraints": [
                            models.CheckConstraint(condition=models.Q(("amount__gt", 0)), name="clawback_amount_positive"),
                            models.CheckConstraint(
                                condition=models.Q(("amount_recovered__gte", 0), ("amount_recovered__lte", models.F("amount"))),
                                name="clawback_recovered_within_amount",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ClawbackRecovery",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("amount", models.BigIntegerField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "clawback",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT, related_name="recoveries", to="payouts.clawback"
                            ),
                        ),
                        (
                            "payout",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="debt_recoveries",
                                to="payouts.payout",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_clawbackrecovery",
                        "constraints": [
                            models.UniqueConstraint(fields=("clawback", "payout"), name="clawback_recovery_once_per_payout"),
                            models.CheckConstraint(condition=models.Q(("amount__gt", 0)), name="clawback_recovery_amount_positive"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
