"""A tutorial-shaped web app: its release phase migrates the database (alembic upgrade head), its
page lists the rows it reads, and POST /notes adds one."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import inspect, text

from db import engine


class Notes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            columns = [c["name"] for c in inspect(connection).get_columns("notes")]
            rows = connection.execute(text("SELECT body FROM notes ORDER BY id")).scalars().all()
        body = f"schema {revision} ({', '.join(columns)})\n" + "".join(f"- {row}\n" for row in rows)
        self._answer(200, body)

    def do_POST(self) -> None:
        note = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": note})
        self._answer(201, "added\n")

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("", int(os.environ["PORT"])), Notes).serve_forever()
