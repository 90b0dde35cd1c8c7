"""git over HTTP(S): the smart HTTP protocol, served by ``git http-backend`` behind a token check.

``git push https://HOST/APP.git main`` authenticates with HTTP Basic (any user name, a token as
the password, as on Heroku). Without a valid token git gets 401 (and asks for credentials); for an
app the account may not use it gets 404 on the first request, so nothing is received. The push
then runs the same pre-receive hook as a local push, and its output streams back to the pusher.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gitpaas.api.core import (
    BODY_ALLOWED,
    accounts_of,
    bearer_token,
    platform_of,
    settings_of,
    visible_app,
)
from gitpaas.errors import NotFound, Unauthorized
from gitpaas.names import is_app_name

router = APIRouter()
SERVICES = {"info/refs", "git-receive-pack", "git-upload-pack"}
_GIT_PATH = re.compile(r"/(?P<app>[^/]+)\.git/(?P<service>[a-z/-]+)")


def is_git_route(path: str) -> bool:
    """Is ``path`` one of git's smart HTTP endpoints for a valid app name? Only these may receive
    bodies over the API's limit (a push), and only once the pusher was checked (``BODY_ALLOWED``)."""
    match = _GIT_PATH.fullmatch(path)
    return match is not None and match["service"] in SERVICES and is_app_name(match["app"])


class _GitAnswer(StreamingResponse):
    """git's answer, passed on as it comes. Unlike a StreamingResponse it does not listen for the
    client going away meanwhile: that listener reads the request's messages, so it would take chunks
    of a push away from ``feed`` (and git would find its pack corrupt). git sends the whole request
    before it reads the answer, so there is nothing to listen for."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


@router.api_route("/{app}.git/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
async def smart_http(request: Request, app: str, rest: str) -> Response:
    if rest not in SERVICES:
        raise NotFound("Not a git endpoint.")
    token = bearer_token(request)
    user = accounts_of(request).authenticate(token) if token else None
    if user is None:
        raise Unauthorized("Authentication required: use a gitpaas token as the password.",
                           challenge='Basic realm="gitpaas"')
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    request.scope[BODY_ALLOWED] = True  # known and allowed: now, and not before, the body may be read
    settings = settings_of(request)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(platform.apps.app_dir(found.name)),
        "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": f"/repo.git/{rest}", "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query, "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_USER": user, "REMOTE_ADDR": request.client.host if request.client else "",
        "GITPAAS_USER": user, "GITPAAS_HOME": str(settings.home),
    }
    for header, variable in (("content-encoding", "HTTP_CONTENT_ENCODING"), ("git-protocol", "GIT_PROTOCOL")):
        if header in request.headers:
            env[variable] = request.headers[header]
    for key in ("GITPAAS_RELEASE_TIMEOUT", "GITPAAS_STOP_TIMEOUT", "GITPAAS_BOOT_TIMEOUT", "HOME", "LANG"):
        if key in os.environ:
            env.setdefault(key, os.environ[key])
    process = await asyncio.create_subprocess_exec(
        shutil.which("git") or "git", "http-backend", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)

    async def feed() -> None:
        try:
            async for chunk in request.stream():
                process.stdin.write(chunk)
                await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # git stopped reading (a request it refused): its answer says why
        finally:
            process.stdin.close()
    feeder = asyncio.create_task(feed())
    status, headers = 200, {}
    while True:  # CGI headers, up to the blank line
        line = (await process.stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[name.strip()] = value.strip()

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await process.stdout.read(65536):
                yield chunk
        finally:
            await feeder
            await process.wait()
    media_type = headers.pop("Content-Type", None)
    headers["X-Accel-Buffering"] = "no"  # the router passes hook output on as it comes
    return _GitAnswer(body(), status_code=status, headers=headers, media_type=media_type)
