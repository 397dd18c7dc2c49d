"""Outstanding refresh tokens kept as digests, not as usable text.

SimpleJWT's blacklist app stored each refresh token's whole text; nothing reads it
back (blacklisting and flushexpiredtokens work by jti). This replaces the text of the
rows written before accounts/refresh_tokens.py with its SHA-256, then reclaims the
space the old text took, so that it cannot be read from the database file's free
pages (SQLite) or old row versions (PostgreSQL) either.
"""

import hashlib

from django.db import migrations

DIGEST_PREFIX = "sha256:"


def digest_tokens(apps, schema_editor):
    outstanding = apps.get_model("token_blacklist", "OutstandingToken")
    rows = outstanding.objects.using(schema_editor.connection.alias).exclude(
        token__startswith=DIGEST_PREFIX
    )
    changed = 0
    for row in rows.iterator():
        row.token = DIGEST_PREFIX + hashlib.sha256(row.token.encode()).hexdigest()
        row.save(update_fields=["token"])
        changed += 1
    if not changed:
        return
    connection = schema_editor.connection
    table = outstanding._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("VACUUM")
        elif connection.vendor == "postgresql":
            cursor.execute(f"VACUUM FULL {connection.ops.quote_name(table)}")


class Migration(migrations.Migration):
    # VACUUM cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("accounts", "0001_initial"),
        ("token_blacklist", "0013_alter_blacklistedtoken_options_and_more"),
    ]

    operations = [
        migrations.RunPython(digest_tokens, migrations.RunPython.noop, elidable=True),
    ]
