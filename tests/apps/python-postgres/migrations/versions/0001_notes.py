"""notes: the rows the page shows"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text, nullable=False))
    op.execute("INSERT INTO notes (body) VALUES ('first note, written by migration 0001')")


def downgrade():
    op.drop_table("notes")
