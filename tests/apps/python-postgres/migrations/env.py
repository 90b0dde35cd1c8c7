"""Alembic's environment: migrations run against DATABASE_URL, in one transaction.

MIGRATION_PAUSE (seconds) is a test's probe: the migration records when it started and ended in
``migration_runs`` after pausing that long inside its transaction, to show two never overlap."""

import os
import time
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text

from db import engine

fileConfig(context.config.config_file_name)  # alembic.ini's logging: "Running upgrade … -> 0001"

with engine.connect() as connection:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        pause = float(os.environ.get("MIGRATION_PAUSE", "0"))
        if pause:
            connection.execute(text("CREATE TABLE IF NOT EXISTS migration_runs "
                                    "(id serial PRIMARY KEY, started timestamptz, ended timestamptz)"))
            started = connection.execute(text("SELECT clock_timestamp()")).scalar()
            time.sleep(pause)
            connection.execute(text("INSERT INTO migration_runs (started, ended) VALUES (:started, clock_timestamp())"),
                               {"started": started})
        context.run_migrations()
