"""The database, from DATABASE_URL as the add-on sets it (postgres://…, SQLAlchemy wants postgresql+psycopg://…)."""

import os

from sqlalchemy import create_engine


def url() -> str:
    value = os.environ["DATABASE_URL"]
    return "postgresql+psycopg://" + value.split("://", 1)[1]


engine = create_engine(url(), pool_pre_ping=True)
