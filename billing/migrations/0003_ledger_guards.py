"""On PostgreSQL the database itself guards the ledger: a deferred constraint trigger refuses any
transaction whose entries do not sum to zero at commit, and rows can be neither updated nor deleted
(a correction is a new transaction)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION billing_ledger_check_balanced() RETURNS trigger AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM billing_ledgerentry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: entries sum to %', NEW.transaction_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER billing_ledgerentry_balanced
    AFTER INSERT ON billing_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_check_balanced();

CREATE OR REPLACE FUNCTION billing_ledger_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_ledgerentry_immutable BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_immutable();
CREATE TRIGGER billing_ledgertransaction_immutable BEFORE UPDATE OR DELETE ON billing_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_immutable();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_ledgerentry_balanced ON billing_ledgerentry;
DROP TRIGGER IF EXISTS billing_ledgerentry_immutable ON billing_ledgerentry;
DROP TRIGGER IF EXISTS billing_ledgertransaction_immutable ON billing_ledgertransaction;
DROP FUNCTION IF EXISTS billing_ledger_check_balanced();
DROP FUNCTION IF EXISTS billing_ledger_immutable();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]
    operations = [migrations.RunPython(forward, backward)]
