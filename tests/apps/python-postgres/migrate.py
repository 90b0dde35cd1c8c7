"""The release phase: ``alembic upgrade head`` — unless the database is already at a revision this
code does not know, which is what a rollback to code from before a migration finds. Then the schema
is left as it is (migrations are written to be backward compatible, so the older code still runs),
and the release goes on: a rollback never loses data by running a downgrade."""

import sys

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from db import engine

config = Config("alembic.ini")
known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
with engine.connect() as connection:
    current = MigrationContext.configure(connection).get_current_revision()
if current is not None and current not in known:
    print(f"The database is at revision {current}, newer than this code knows: leaving the schema as it is")
    sys.exit(0)
command.upgrade(config, "head")
print(f"The database schema is at head (it was at {current or 'nothing'})")
