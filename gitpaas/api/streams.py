"""Streams: a release's output (``output_stream_url``) and log sessions (``logplex_url``).

Both are signed URLs, so the Heroku CLI can fetch them without credentials, as it does on Heroku.
Each is bound to the app's id and to the account it was issued to, and expires (release output:
a day; a log session: an hour to open it); opening one checks again that the app is still that app
and that the account may still use it (``core.stream_app``). While a release is pending, its output
stream sends what there is and then follows the file until the release ends (chunked); a ``tail``
log session follows the app's processes until the client goes away, or the account loses access.
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

from gitpaas.api.core import (
    LOG_SESSION_TTL,
    JsonRoute,
    Strict,
    base_url,
    current_user,
    platform_of,
    settings_of,
    stream_app,
    visible_app,
)
from gitpaas.errors import NotFound
from gitpaas.lines import stopped_at_exit
from gitpaas.release import PENDING
from gitpaas.shapes import derived_id
from gitpaas.signing import Signer
from gitpaas.store.files import read_from
from gitpaas.store.releases import ReleaseStore

router = APIRouter(route_class=JsonRoute)
POLL = 0.2
#: how often an open tail checks that its account may still use the app
ACCESS_RECHECK = 10.0
#: tells nginx (the router, when the API is published through it) to pass chunks on as they come
NO_BUFFERING = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


@router.get("/streams/release-output/{token}")
async def release_output(request: Request, token: str) -> StreamingResponse:
    return _follow_release_file(request, token, "release-output", ReleaseStore.output_path)


@router.get("/streams/release-story/{token}")
async def release_story(request: Request, token: str) -> StreamingResponse:
    """What the pipeline said while making a release the API started (``gitpaas.signing``)."""
    return _follow_release_file(request, token, "release-story", ReleaseStore.story_path)


def _follow_release_file(request: Request, token: str, kind: str, path_of) -> StreamingResponse:
    claims = Signer(settings_of(request)).verify(token, kind)
    platform = platform_of(request)
    releases = platform.apps.releases(stream_app(platform, claims).name)
    version = claims.get("v")
    if type(version) is not int or _status(releases, version) is None:
        raise NotFound("Couldn't find that stream.")
    path = path_of(releases, version)

    async def chunks() -> AsyncIterator[bytes]:
        offset = 0
        while True:
            pending = _status(releases, version) == PENDING  # before reading: no lost tail
            data = await asyncio.to_thread(read_from, path, offset)
            offset += len(data)
            if data:
                yield data
            if not pending or await request.is_disconnected():
                return
            await asyncio.sleep(POLL)
    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8", headers=NO_BUFFERING)


def _status(releases: ReleaseStore, version: int) -> str | None:
    """The release's status, or None once it is gone (its app destroyed while streaming)."""
    try:
        return releases.get(version).status
    except NotFound:
        return None


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
    claims = {"app": found.name, "app_id": found.id, "user": user, "lines": body.lines or 100,
              "tail": bool(body.tail), "dyno": body.dyno or body.dyno_name or body.type}
    token = Signer(settings_of(request)).sign("logs", claims, LOG_SESSION_TTL)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"id": derived_id(found.id, "log-session", token[-12:]), "created_at": now, "updated_at": now,
            "logplex_url": f"{base_url(request)}/streams/logs/{token}"}


@router.get("/streams/logs/{token}")
async def logs(request: Request, token: str) -> StreamingResponse:
    claims = Signer(settings_of(request)).verify(token, "logs")
    platform = platform_of(request)
    app = stream_app(platform, claims)
    scheduler = platform.scheduler
    wanted = claims.get("dyno")
    lines: queue.Queue = queue.Queue(maxsize=10000)
    stop = threading.Event()

    def pump() -> None:
        try:
            with stopped_at_exit(scheduler.logs(app.name, claims.get("lines", 100), bool(claims.get("tail")))) as followed:
                for line in followed:
                    if stop.is_set():
                        return  # (closing it stops what it follows)
                    if line and (not wanted or f"[{wanted}]" in line or f"[{wanted}." in line):
                        try:
                            lines.put(line, timeout=1.0)
                        except queue.Full:
                            pass  # a reader that does not keep up (or is gone: the next check ends this)
        finally:
            try:
                lines.put(None, timeout=1.0)
            except queue.Full:
                pass  # nobody reads any more
    threading.Thread(target=pump, name="gitpaas-logs", daemon=True).start()

    async def events() -> AsyncIterator[bytes]:
        """Server-Sent Events, as Heroku's log streams are: one ``data:`` line per log line, and a
        comment every second while idle, so neither clients nor proxies give up on a quiet tail.
        Every ACCESS_RECHECK seconds it checks that the account may still use the app."""
        recheck_at = time.monotonic() + ACCESS_RECHECK
        try:
            while True:
                if time.monotonic() >= recheck_at:
                    recheck_at = time.monotonic() + ACCESS_RECHECK
                    try:
                        await asyncio.to_thread(stream_app, platform, claims)
                    except NotFound:
                        return
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
