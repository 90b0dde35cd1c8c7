"""The rendezvous: where a client attaches to a one-off dyno it created with ``attach: true``.

The Heroku CLI's protocol (its ``lib/run/dyno.js`` is the specification): the dyno's
``attach_url`` is ``rendezvous://HOST:PORT/SECRET``; the client opens TLS to HOST:PORT, writes
``SECRET\\r\\n``, discards the first thing it receives (``rendezvous\\r\\n`` here) and from then
on the connection is the dyno's terminal: its output one way, the keyboard the other. Without a
TTY, a ``\\x04`` from the client ends the dyno's standard input (the CLI sends one when its own
input ends). The dyno starts only once its client is there, so nothing it prints is lost; when it
ends the connection closes, and when the connection drops the dyno is stopped.

The gitpaas CLI asks for framed streams (``SECRET?frames=1``, see ``gitpaas.frames``), so standard
error stays apart and the exit status arrives at the end; it pins the certificate by the
fingerprint the API gave it.

A secret is good once, for a minute: a dyno nobody attached to by then is removed."""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from gitpaas.errors import EnvironmentProblem, GitpaasError
from gitpaas.frames import EOF, EXIT, RESIZE, STDERR, STDIN, frame, read_frame
from gitpaas.scheduler import RunSession

log = logging.getLogger("gitpaas.rendezvous")
#: how long a created dyno waits for its client
ATTACH_WINDOW = 60.0
#: the longest first line a client may send (its secret and options)
MAX_LINE = 512


@dataclass
class Waiting:
    session: RunSession
    app: str
    created: float = field(default_factory=time.monotonic)


def certificate(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """The rendezvous's certificate and key: self-signed, made once (openssl) for ``names``."""
    cert, key = folder / "rendezvous.crt", folder / "rendezvous.key"
    if cert.exists() and key.exists():
        return cert, key
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    alt = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}" for n in names)
    new_key, new_cert = folder / ".rendezvous.key.new", folder / ".rendezvous.crt.new"
    try:
        new_key.touch(mode=0o600)
        try:
            made = subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-days", "3650", "-subj", "/CN=gitpaas rendezvous", "-addext", f"subjectAltName={alt}",
                 "-keyout", str(new_key), "-out", str(new_cert)], capture_output=True, timeout=60)
        except FileNotFoundError:
            raise EnvironmentProblem("openssl is not installed: the rendezvous of one-off dynos needs it to make "
                                     "its certificate (apt install openssl)") from None
        if made.returncode != 0:
            lines = made.stderr.decode(errors="replace").strip().splitlines() or ["?"]
            raise EnvironmentProblem(f"openssl could not make the rendezvous certificate: {lines[-1]}")
        new_key.chmod(0o600)
        new_cert.chmod(0o644)
        new_key.replace(key)
        new_cert.replace(cert)
    finally:
        new_key.unlink(missing_ok=True)
        new_cert.unlink(missing_ok=True)
    return cert, key


def fingerprint(cert: Path) -> str:
    """SHA-256 of the certificate's DER form, as hex: what a client pins."""
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


class Rendezvous:
    """A TLS listener that pairs clients with the dynos waiting for them."""

    def __init__(self, host: str, port: int, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.fingerprint = fingerprint(cert)
        self.certificate_path = cert
        self.listener = socket.create_server((host, port), reuse_port=False)
        self.port = self.listener.getsockname()[1]
        self.waiting: dict[str, Waiting] = {}
        self.lock = threading.Lock()

    def register(self, session: RunSession, app: str) -> str:
        secret = secrets.token_urlsafe(32)
        with self.lock:
            self.waiting[secret] = Waiting(session, app)
        return secret

    def serve(self) -> None:
        threading.Thread(target=self._accept, name="gitpaas-rendezvous", daemon=True).start()
        threading.Thread(target=self._expire, name="gitpaas-rendezvous-expiry", daemon=True).start()

    def _expire(self) -> None:
        while True:
            time.sleep(5)
            now = time.monotonic()
            with self.lock:
                stale = [s for s, w in self.waiting.items() if now - w.created > ATTACH_WINDOW]
                gone = [self.waiting.pop(s) for s in stale]
            for waiting in gone:
                _quietly(waiting.session.close)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_one, args=(connection,), daemon=True).start()

    def _serve_one(self, raw: socket.socket) -> None:
        try:
            _keep_alive(raw)
            raw.settimeout(30)
            connection = self.context.wrap_socket(raw, server_side=True)
            line = _read_line(connection)
        except (OSError, ssl.SSLError, ValueError):
            _quietly(raw.close)
            return
        secret, _, query = line.partition("?")
        with self.lock:
            waiting = self.waiting.pop(secret, None)
        if waiting is None:
            _quietly(connection.close)
            return
        framed = parse_qs(query).get("frames") == ["1"]
        connection.settimeout(None)
        try:
            connection.sendall(b"rendezvous\r\n")
            _attach(connection, waiting.session, framed)
        except GitpaasError as exc:  # (it could not start): the client is told why, as its last words
            said = f" !    {exc.message}\r\n".encode()
            _quietly(connection.sendall, frame(STDERR, said) + frame(EXIT, b"1") if framed else said)
        except Exception:  # noqa: BLE001 — a session's failure ends that session, not the server
            log.exception("one-off dyno %s of %s ended unexpectedly", waiting.session.name, waiting.app)
        finally:
            _quietly(waiting.session.close)
            _quietly(connection.close)


def _keep_alive(raw: socket.socket) -> None:
    """A client that vanishes without closing (a laptop that sleeps, a lost network) is noticed
    within about a minute and a half, and its dyno stopped."""
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            raw.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _read_line(connection: ssl.SSLSocket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(1)
        if not chunk or len(data) > MAX_LINE:
            raise ValueError("no line")
        data += chunk
    return data.decode("ascii", "replace").strip()


def _attach(connection: ssl.SSLSocket, session: RunSession, framed: bool) -> None:
    """Start the dyno and pump both ways until it ends (or the client goes: then it is stopped)."""
    session.start()
    sending = threading.Lock()
    client_gone = threading.Event()

    def from_client() -> None:
        try:
            while True:
                if framed:
                    got = read_frame(connection)
                    if got is None:
                        break
                    kind, data = got
                    if kind == STDIN:
                        session.write(data)
                    elif kind == EOF:
                        session.close_stdin()
                    elif kind == RESIZE:
                        rows, _, columns = data.decode("ascii", "replace").partition(" ")
                        if rows.isdigit() and columns.isdigit():
                            session.resize(int(rows), int(columns))
                    continue
                data = connection.recv(65536)
                if not data:
                    break
                if not session.tty and b"\x04" in data:  # the Heroku CLI's end of input
                    session.write(data.split(b"\x04", 1)[0])
                    session.close_stdin()
                    continue
                session.write(data)
        except (OSError, ssl.SSLError):
            pass
        client_gone.set()
        session.stop()  # a dropped connection stops the dyno (after its end, this does nothing)

    threading.Thread(target=from_client, name=f"gitpaas-{session.name}-input", daemon=True).start()
    while True:
        got = session.read()
        if got is None:
            break
        kind, data = got
        with sending:
            try:
                connection.sendall(frame(kind, data) if framed else data)
            except (OSError, ssl.SSLError):
                session.stop()
                return
    status = session.wait()
    if framed and not client_gone.is_set():
        with sending:
            _quietly(connection.sendall, frame(EXIT, str(status).encode()))
    _quietly(connection.shutdown, socket.SHUT_RDWR)


def _quietly(action, *args) -> None:
    try:
        action(*args)
    except Exception:  # noqa: BLE001 — cleaning up after an ended session: nothing to tell anyone
        pass
