"""A subscription's standing slot is held ahead by `reserved` bookings, under the same exclusion constraint
as every other slot-holding booking (0003), so a reservation and a booking (or two reservations) of one
listener can never overlap."""

from django.db import migrations, models

FORWARD = """
ALTER TABLE booking_booking DROP CONSTRAINT IF EXISTS booking_listener_no_overlap;
ALTER TABLE booking_booking ADD CONSTRAINT booking_listener_no_overlap
    EXCLUDE USING gist (listener_id WITH =, tstzrange(scheduled_at, ends_at, '[)') WITH &&)
    WHERE (status IN ('pending', 'confirmed', 'in_progress', 'reserved'));
"""
BACKWARD = """
ALTER TABLE booking_booking DROP CONSTRAINT IF EXISTS booking_listener_no_overlap;
ALTER TABLE booking_booking ADD CONSTRAINT booking_listener_no_overlap
    EXCLUDE USING gist (listener_id WITH =, tstzrange(scheduled_at, ends_at, '[)') WITH &&)
    WHERE (status IN ('pending', 'confirmed', 'in_progress'));
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("booking", "0003_listener_no_overlap")]
    operations = [
        migrations.AlterField(
            model_name="booking",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending payment"),
                    ("confirmed", "Confirmed"),
                    ("in_progress", "In progress"),
                    ("completed", "Completed"),
                    ("cancelled", "Cancelled"),
                    ("refunded", "Refunded"),
                    ("disputed", "Disputed"),
                    ("reserved", "Reserved by a subscription"),
                ],
                db_index=True,
                default="pending",
                max_length=16,
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
