"""Log drains: every line of an app's logs, sent on to an HTTPS endpoint or a syslog server.

``drains.json`` in the app's folder holds them (``https://…``, ``http://…``, ``syslog://HOST:PORT``,
``syslog+tls://HOST:PORT``), with the rule webhooks follow: a host that is or resolves to a private
address is refused unless the operator allows private targets, and asked again at every connection.

Delivery is Heroku's: syslog messages (RFC 5424) framed by their length (RFC 6587), batched — to
HTTP(S) as POSTs of ``application/logplex-1`` with the ``Logplex-*`` headers, to syslog over TCP
(TLS for ``syslog+tls``). ``gitpaas server`` runs the forwarding (:class:`Forwarding`): one follower
per app with drains, a batch every second; a drain that fails is retried with a growing pause while
its backlog is kept up to MAX_BACKLOG lines (older ones are dropped and counted, as Heroku does).
What each drain did last is in ``drains-status.json``, which ``drains`` shows."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from filelock import FileLock

from gitpaas.errors import DamagedRecord, GitpaasError, UsageError
from gitpaas.lines import stopped_at_exit
from gitpaas.netpolicy import Resolver, check_host, system_resolver
from gitpaas.notify.deliver import http_opener
from gitpaas.release import now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import PRIVATE, read_json, write_json

SCHEMES = ("https", "http", "syslog", "syslog+tls")
#: lines a drain keeps while its endpoint does not take them
MAX_BACKLOG = 10_000
#: lines in one delivery at most
BATCH = 500
#: seconds between deliveries, and the longest pause after failures
INTERVAL = 1.0
MAX_PAUSE = 60.0
TIMEOUT = 10.0


@dataclass
class Drain:
    url: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: the drain's token: the syslog host field Heroku's drains carry (``d.<uuid>``)
    token: str = field(default_factory=lambda: f"d.{uuid.uuid4()}")
    created_at: str = field(default_factory=now_iso)


def validate_drain_url(url: str, private_targets: bool, resolver: Resolver = system_resolver) -> str:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in SCHEMES or not parts.hostname:
        raise UsageError(f"a drain is https://…, http://…, syslog://HOST:PORT or syslog+tls://HOST:PORT, not {url!r}")
    if parts.scheme.startswith("syslog") and not port:
        raise UsageError(f"a syslog drain needs its port: syslog://{parts.hostname}:PORT")
    refusal = None if private_targets else private_host(parts.hostname, resolver)
    if refusal:
        raise UsageError(f"drain {url}: {refusal}")
    return url.strip()


def private_host(host: str, resolver: Resolver = system_resolver) -> str | None:
    verdict = check_host(host, resolver)
    if verdict.refused is None:
        return None
    return (f"{verdict.refused}; drains may only go to public addresses "
            "(the operator can allow private ones: GITPAAS_WEBHOOK_PRIVATE_TARGETS=1)")


class Drains:
    """An app's drains and their delivery status, as files in its folder."""

    def __init__(self, settings: Settings, app: str) -> None:
        self.app = app
        self.folder = settings.app_dir(app)
        self.path = self.folder / "drains.json"
        self.status_path = self.folder / "drains-status.json"
        self.private_targets = settings.webhook_private_targets

    def list(self) -> list[Drain]:
        try:
            return [Drain(**entry) for entry in read_json(self.path)]
        except FileNotFoundError:
            return []
        except (ValueError, TypeError) as exc:
            raise DamagedRecord(self.app, "drains.json", str(exc)) from None

    def _lock(self) -> FileLock:
        return FileLock(str(self.folder / ".drains.lock"))

    def add(self, url: str, resolver: Resolver = system_resolver) -> Drain:
        url = validate_drain_url(url, self.private_targets, resolver)
        with self._lock():
            drains = self.list()
            if any(drain.url == url for drain in drains):
                raise UsageError(f"{url} is already a drain of this app")
            drain = Drain(url=url)
            write_json(self.path, [asdict(d) for d in [*drains, drain]], mode=PRIVATE)
        return drain

    def remove(self, id_or_url: str) -> Drain:
        with self._lock():
            drains = self.list()
            for drain in drains:
                if id_or_url in (drain.id, drain.url, drain.token):
                    write_json(self.path, [asdict(d) for d in drains if d is not drain], mode=PRIVATE)
                    return drain
        raise UsageError(f"no drain {id_or_url!r} (see `gitpaas drains -a APP`)")

    def status(self) -> dict[str, dict[str, Any]]:
        try:
            return read_json(self.status_path)
        except (FileNotFoundError, ValueError):
            return {}

    def record(self, statuses: dict[str, dict[str, Any]]) -> None:
        write_json(self.status_path, statuses, mode=PRIVATE)


# --- delivery ----------------------------------------------------------------------------------

def syslog_frame(line: str, app: str, token: str) -> bytes:
    """One log line (``STAMP app[web.1]: text``) as an octet-counted RFC 5424 message."""
    stamp, _, rest = line.partition(" ")
    source, _, text = rest.partition(": ")
    kind, _, dyno = source.partition("[")
    message = f"<190>1 {stamp} {token} {kind or 'app'} {dyno.rstrip(']') or '-'} - {text}".encode("utf-8", "replace")
    return f"{len(message)} ".encode() + message


def send(drain: Drain, app: str, lines: list[str], private_targets: bool,
         resolver: Resolver = system_resolver) -> None:
    """Deliver ``lines`` to ``drain`` once; OSError on any failure. Unless ``private_targets``, the
    connection goes only to the public addresses the check saw (no second DNS answer is asked)."""
    parts = urlsplit(drain.url)
    body = b"".join(syslog_frame(line, app, drain.token) for line in lines)
    if parts.scheme in ("http", "https"):
        request = urllib.request.Request(drain.url, data=body, method="POST", headers={
            "Content-Type": "application/logplex-1", "Logplex-Msg-Count": str(len(lines)),
            "Logplex-Frame-Id": str(uuid.uuid4()), "Logplex-Drain-Token": drain.token, "User-Agent": "gitpaas-drain"})
        try:
            with http_opener(private_targets, resolver).open(request, timeout=TIMEOUT) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except urllib.error.URLError as exc:
            raise OSError(str(exc.reason)) from None
        if not 200 <= status < 300:
            raise OSError(f"answered {status}")
        return
    with _connect(parts.hostname or "", parts.port or 0, private_targets, resolver) as raw:
        if parts.scheme == "syslog+tls":
            with ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname) as secure:
                secure.sendall(body)
        else:
            raw.sendall(body)


def _connect(host: str, port: int, private_targets: bool, resolver: Resolver) -> socket.socket:
    if private_targets:
        return socket.create_connection((host, port), timeout=TIMEOUT)
    verdict = check_host(host, resolver)
    if not verdict.resolved:
        raise OSError(f"cannot resolve {host}")
    if verdict.refused:
        raise OSError(f"not sent: {verdict.refused}")
    failure = OSError(f"cannot connect to {host}")
    for address in verdict.addresses:
        try:
            return socket.create_connection((address, port), timeout=TIMEOUT)
        except OSError as exc:
            failure = exc
    raise failure


class AppDrains:
    """One app's drains being fed: a follower of its logs, a backlog and a sender per drain."""

    def __init__(self, settings: Settings, app: str, follow: Callable[[], Iterator[str]]) -> None:
        self.settings = settings
        self.app = app
        self.store = Drains(settings, app)
        self.follow = follow
        self.backlogs: dict[str, deque[str]] = {}
        self.state: dict[str, dict[str, Any]] = self.store.status()
        self.pause_until: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._read, name=f"gitpaas-drain-{self.app}", daemon=True).start()
        threading.Thread(target=self._deliver, name=f"gitpaas-drain-send-{self.app}", daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()

    def _read(self) -> None:
        try:
            with stopped_at_exit(self.follow()) as followed:
                for line in followed:
                    if self.stopped.is_set():
                        return  # (closing it stops what it follows)
                    if line:  # ("" marks a second of silence)
                        self._keep(line)
        except Exception:  # noqa: BLE001 — the engine went away: the manager starts a new follower
            pass
        self.stopped.set()

    def _keep(self, line: str) -> None:
        with self.lock:
            for drain_id in list(self.backlogs):
                backlog = self.backlogs[drain_id]
                if len(backlog) == backlog.maxlen:
                    entry = self.state.setdefault(drain_id, {})
                    entry["dropped"] = entry.get("dropped", 0) + 1
                backlog.append(line)

    def _deliver(self) -> None:
        while not self.stopped.wait(INTERVAL):
            try:
                drains = self.store.list()
            except GitpaasError:
                continue
            with self.lock:
                for drain in drains:
                    self.backlogs.setdefault(drain.id, deque(maxlen=MAX_BACKLOG))
                for gone in set(self.backlogs) - {d.id for d in drains}:
                    del self.backlogs[gone]
                    self.state.pop(gone, None)
            changed = False
            for drain in drains:
                changed |= self._deliver_one(drain)
            if changed:
                try:
                    self.store.record(self.state)
                except (OSError, GitpaasError):
                    pass  # the status is what it was; the next batch writes it again

    def _deliver_one(self, drain: Drain) -> bool:
        if time.monotonic() < self.pause_until.get(drain.id, 0.0):
            return False
        with self.lock:
            backlog = self.backlogs.get(drain.id)
            batch = [backlog[i] for i in range(min(BATCH, len(backlog)))] if backlog else []
        if not batch:
            return False
        entry = self.state.setdefault(drain.id, {})
        try:
            send(drain, self.app, batch, self.settings.webhook_private_targets)
        except OSError as exc:  # (requests' errors are OSErrors too)
            failures = entry.get("failures", 0) + 1
            entry.update(failures=failures, last_error=str(exc)[:300], last_error_at=now_iso())
            self.pause_until[drain.id] = time.monotonic() + min(MAX_PAUSE, 2 ** min(failures, 6))
            return True
        with self.lock:
            for _ in batch:
                if backlog:
                    backlog.popleft()
        entry.update(failures=0, delivered=entry.get("delivered", 0) + len(batch), delivered_at=now_iso())
        return True


class Forwarding:
    """``gitpaas server``'s drain forwarding: every few seconds, start feeding the apps that got a
    drain and stop feeding those that lost their last one."""

    def __init__(self, settings: Settings, apps: Callable[[], list[str]],
                 follow: Callable[[str], Iterator[str]], every: float = 3.0) -> None:
        self.settings = settings
        self.apps = apps
        self.follow = follow
        self.every = every
        self.feeding: dict[str, AppDrains] = {}

    def start(self) -> None:
        threading.Thread(target=self._run, name="gitpaas-drains", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # noqa: BLE001 — the next round tries again; the API keeps serving
                pass
            time.sleep(self.every)

    def check(self) -> None:
        wanted = set()
        for app in self.apps():
            try:
                if Drains(self.settings, app).list():
                    wanted.add(app)
            except GitpaasError:
                continue  # its drains.json is damaged (`drains` says so): the other apps go on
        for app, feeding in list(self.feeding.items()):
            if app not in wanted or feeding.stopped.is_set():
                feeding.stop()
                del self.feeding[app]
        for app in wanted - set(self.feeding):
            feeding = AppDrains(self.settings, app, lambda app=app: self.follow(app))
            self.feeding[app] = feeding
            feeding.start()

