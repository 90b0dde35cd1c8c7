"""Streams: a release's output (``output_stream_url``) and log sessions (``logplex_url``).

Both are signed URLs, so the Heroku CLI can fetch them without credentials, as it does on Heroku.
While a release is pending, its output stream sends what there is and then follows the file until
the release ends (chunked); a ``tail`` log session follows the app's processes until the client
goes away.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import AsyncIterator, Optional

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from gitpaas.api.core import Signer, base_url, current_user, platform_of, settings_of, visible_app
from gitpaas.api.routes import Strict
from gitpaas.errors import NotFound
from gitpaas.release import PENDING
from gitpaas.shapes import derived_id

router = APIRouter()
POLL = 0.2
#: tells nginx (the router, when the API is published through it) to pass chunks on as they come
NO_BUFFERING = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


@router.get("/streams/release-output/{token}")
async def release_output(request: Request, token: str) -> StreamingResponse:
    claims = Signer(settings_of(request)).verify(token)
    releases = platform_of(request).apps.releases(claims["app"])
    path = releases.output_path(claims["v"])

    async def chunks() -> AsyncIterator[bytes]:
        offset = 0
        while True:
            pending = releases.get(claims["v"]).status == PENDING  # before reading: no lost tail
            data = await asyncio.to_thread(_read_from, path, offset)
            offset += len(data)
            if data:
                yield data
            if not pending or await request.is_disconnected():
                return
            await asyncio.sleep(POLL)
    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8", headers=NO_BUFFERING)


def _read_from(path, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


class LogSessionCreate(Strict):
    dyno: Optional[str] = Field(default=None, max_length=64)
    lines: Optional[int] = Field(default=None, ge=1, le=1500)
    source: Optional[str] = Field(default=None, max_length=32)
    tail: Optional[bool] = None
    type: Optional[str] = Field(default=None, max_length=30)
    dyno_name: Optional[str] = Field(default=None, max_length=64)


@router.post("/apps/{app}/log-sessions", status_code=201)
def log_session(request: Request, app: str, body: LogSessionCreate | None = None) -> dict:
    user = current_user(request)
    found = visible_app(platform_of(request), user, app)
    body = body or LogSessionCreate()
    claims = {"app": found.name, "lines": body.lines or 100, "tail": bool(body.tail),
              "dyno": body.dyno or body.dyno_name or body.type, "t": int(time.time())}
    token = Signer(settings_of(request)).sign(claims)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"id": derived_id(found.id, "log-session", token[-12:]), "created_at": now, "updated_at": now,
            "logplex_url": f"{base_url(request)}/streams/logs/{token}"}


@router.get("/streams/logs/{token}")
async def logs(request: Request, token: str) -> StreamingResponse:
    claims = Signer(settings_of(request)).verify(token)
    if not claims.get("tail") and time.time() - claims.get("t", 0) > 3600:
        raise NotFound("This log session has expired.")
    scheduler = platform_of(request).scheduler
    wanted = claims.get("dyno")
    lines: queue.Queue = queue.Queue(maxsize=10000)
    stop = threading.Event()

    def pump() -> None:
        try:
            for line in scheduler.logs(claims["app"], claims["lines"], claims["tail"]):
                if stop.is_set():
                    return
                if not wanted or f"[{wanted}]" in line or f"[{wanted}." in line:
                    lines.put(line)
        finally:
            lines.put(None)
    threading.Thread(target=pump, name="gitpaas-logs", daemon=True).start()

    async def events() -> AsyncIterator[bytes]:
        """Server-Sent Events, as Heroku's log streams are: one ``data:`` line per log line, and a
        comment every second while idle, so neither clients nor proxies give up on a quiet tail."""
        try:
            while True:
                try:
                    line = await asyncio.to_thread(lines.get, True, 1.0)
                except queue.Empty:
                    if await request.is_disconnected():
                        return
                    yield b": keepalive\n\n"
                    continue
                if line is None:
                    return
                yield f"data: {line}\n\n".encode()
        finally:
            stop.set()
    return StreamingResponse(events(), media_type="text/event-stream", headers=NO_BUFFERING)
