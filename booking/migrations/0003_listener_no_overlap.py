"""On PostgreSQL, an exclusion constraint makes overlapping slot-holding bookings of one listener
impossible, so two concurrent requests for one slot cannot both win. SQLite has no equivalent; the
service's check is all it gets there."""

from django.db import migrations

FORWARD = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE booking_booking ADD CONSTRAINT booking_listener_no_overlap
    EXCLUDE USING gist (listener_id WITH =, tstzrange(scheduled_at, ends_at, '[)') WITH &&)
    WHERE (status IN ('pending', 'confirmed', 'in_progress'));
"""
BACKWARD = "ALTER TABLE booking_booking DROP CONSTRAINT IF EXISTS booking_listener_no_overlap;"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("booking", "0002_initial")]
    operations = [migrations.RunPython(forward, backward)]
