"""Room for sealed secrets: an account's webhook secrets are kept encrypted from now on, and a
sealed secret is longer than the 64 characters the columns held.

A migration cannot know the gateway's secret key, so it seals nothing: the plaintext secrets an
older reelgate kept are sealed by the first start that has the key.

On SQLite, batch mode rebuilds ``accounts`` (with its CHECK constraints, which it carries over);
the table has no triggers to make again, unlike the ledger in revision 0005.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As reelgate.store.schema and reelgate.store.sealing have them at this revision, written out
# so that this migration never changes.
COLUMNS = ("webhook_secret", "previous_webhook_secret")
PLAINTEXT_LENGTH = 64
SEALED_LENGTH = 255
SEALED_PREFIX = "enc1:"


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        for column in COLUMNS:
            batch.alter_column(
                column,
                existing_type=sa.String(PLAINTEXT_LENGTH),
                type_=sa.String(SEALED_LENGTH),
                existing_nullable=column != "webhook_secret",
            )


def downgrade() -> None:
    # An older reelgate would sign webhooks with the ciphertext: refuse, and change nothing.
    sealed = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM accounts WHERE webhook_secret LIKE :sealed "
                "OR previous_webhook_secret LIKE :sealed"
            ),
            {"sealed": SEALED_PREFIX + "%"},
        )
        .scalar_one()
    )
    if sealed:
        raise RuntimeError(
            f"cannot downgrade below 0006: {sealed} accounts keep their webhook secrets sealed, "
            "which a reelgate from before 0006 cannot read"
        )
    with op.batch_alter_table("accounts") as batch:
        for column in COLUMNS:
            batch.alter_column(
                column,
                existing_type=sa.String(SEALED_LENGTH),
                type_=sa.String(PLAINTEXT_LENGTH),
                existing_nullable=column != "webhook_secret",
            )
