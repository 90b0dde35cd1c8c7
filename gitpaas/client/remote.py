"""The commands' data from a gitpaas server's Platform API (see ``gitpaas.cli.backend``): the same
shapes the home gives, read from gitpaas's variant of the API's resources, and releases followed
to their end as the pipeline would tell them on the server."""

from __future__ import annotations

import hashlib
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

from gitpaas.client.api import Api, RemoteError
from gitpaas.client.credentials import Login
from gitpaas.client.outcomes import Access, ConfigOutcome, confirm_backup_deletion
from gitpaas.client.terminal import Channel
from gitpaas.errors import (
    ChangeReleaseFailed,
    ConfigChangeFailed,
    EnvironmentProblem,
    ReleaseFailed,
    UsageError,
)
from gitpaas.frames import EOF, EXIT, RESIZE, STDIN, frame, read_frame
from gitpaas.release import FAILED, PENDING, Release
from gitpaas.scheduler import Process
from gitpaas.sizes import get as size_named

#: how often a release being followed is asked for its status
POLL = 0.3


def _segment(text: str) -> str:
    return quote(text, safe="")


class Remote:
    remote = True

    def __init__(self, login: Login) -> None:
        self.login = login
        self.api = Api(login)
        self.where = login.server

    # --- apps ----------------------------------------------------------------------------------
    def apps(self) -> list[dict[str, Any]]:
        return self.api.get("/apps")

    def create_app(self, name: str, stack: str | None, owner: str | None) -> dict[str, Any]:
        if owner:
            raise UsageError("--owner is for the server's operator: an app created from here is yours")
        return self.api.post("/apps", {"name": name, **({"stack": stack} if stack else {})})

    def app(self, name: str) -> dict[str, Any]:
        return self.api.get(f"/apps/{_segment(name)}")

    def destroy_app(self, name: str) -> list[dict[str, str]]:
        return self.api.delete(f"/apps/{_segment(name)}").get("kept_backups", [])

    # --- config --------------------------------------------------------------------------------
    def config(self, app: str) -> tuple[dict[str, str], dict[str, str]]:
        values = self.api.get(f"/apps/{_segment(app)}/config-vars")
        owners = {key: addon["name"] for addon in self.api.get(f"/apps/{_segment(app)}/addons")
                  for key in addon.get("config_vars") or []}
        return values, owners

    def change_config(self, app: str, set_values: dict[str, str], unset_keys: list[str]) -> ConfigOutcome:
        previous = self.app(app)["current_release"]
        answer = self.api.patch(f"/apps/{_segment(app)}/config-vars",
                                {**set_values, **{key: None for key in unset_keys}})
        if answer.get("release") is None:
            return ConfigOutcome(bool(answer.get("changed")), None)
        try:
            release = self._follow(app, answer["release"])
        except ReleaseFailed as exc:
            raise ConfigChangeFailed(app, exc.version, exc.reason, int(previous[1:]) if previous else None,
                                     exc.exit_status) from None
        return ConfigOutcome(True, release.version)

    # --- releases ------------------------------------------------------------------------------
    def releases(self, app: str, limit: int) -> tuple[list[Release], list[str]]:
        response = self.api.request("GET", f"/apps/{_segment(app)}/releases",
                                    headers={"Range": f"version ..; max={limit}, order=desc"})
        warnings = [part.split('"')[1].replace(" and left out", " and left out of this list")
                    for part in response.headers.get("Warning", "").split(", 199 ") if '"' in part]
        return [Release.from_dict(data) for data in self.api.json(response)], warnings

    def release(self, app: str, version: int | None) -> Release:
        if version is None:
            found, _ = self.releases(app, 1)
            if not found:
                raise UsageError(f"{app} has no releases yet")
            return found[0]
        return Release.from_dict(self.api.get(f"/apps/{_segment(app)}/releases/{version}"))

    def output(self, app: str, release: Release) -> Iterator[str]:
        if not release.output_stream_url or not release.process_types.get("release"):
            return
        for chunk in self.api.stream(release.output_stream_url):
            yield chunk.decode("utf-8", "replace")

    def _follow(self, app: str, record: dict[str, Any]) -> Release:
        """Tell a release's story until it ends — what the pipeline says on the server, streamed
        from it (``story_stream_url``) — then its outcome; a failed one raises, as on the server."""
        release = Release.from_dict(record)
        story = record.get("story_stream_url")
        if story:
            for chunk in self.api.stream(story):
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
        while release.status == PENDING:
            time.sleep(POLL)
            release = self.release(app, release.version)
        if release.status == FAILED:
            failure = release.failure or {}
            raise ReleaseFailed(release.version, failure.get("reason") or "it failed", failure.get("exit_status"))
        return release

    def rollback(self, app: str, version: int | None) -> Release:
        pending = self.api.post(f"/apps/{_segment(app)}/releases",
                                {"release": str(version) if version is not None else "previous"})
        return self._follow(app, pending)

    def retry(self, app: str) -> Release:
        pending = self.api.post(f"/apps/{_segment(app)}/releases", {"retry": True})
        return self._follow(app, pending)

    def retention(self, app: str, keep: int | None) -> list[int]:
        answer = self.api.patch(f"/apps/{_segment(app)}", {"retention": keep if keep is not None else "all"})
        return answer.get("pruned", [])

    # --- processes -----------------------------------------------------------------------------
    def processes(self, app: str) -> tuple[str, list[Process]]:
        app_id = self.app(app)["id"]
        return app_id, [Process(**data) for data in self.api.get(f"/apps/{_segment(app)}/dynos")]

    def _formation(self, app: str, updates: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        if updates:
            return self.api.patch(f"/apps/{_segment(app)}/formation", {"updates": updates})
        return self.api.get(f"/apps/{_segment(app)}/formation")

    def scale(self, app: str, wanted: dict[str, int]) -> dict[str, int]:
        entries = self._formation(app, [{"type": t, "quantity": q} for t, q in wanted.items()])
        return {e["type"]: e["quantity"] for e in entries if e["type"] != "release"}

    def stop(self, app: str, dyno: str) -> str:
        return self.api.post(f"/apps/{_segment(app)}/dynos/{_segment(dyno)}/actions/stop").get("outcome", "stopped")

    def restart(self, app: str, target: str | None) -> list[str]:
        path = f"/apps/{_segment(app)}/dynos" + (f"/{_segment(target)}" if target else "")
        return self.api.delete(path).get("restarted", [])

    def sizes(self, app: str, wanted: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]:
        entries = self._formation(app, [{"type": t, "size": s} for t, s in wanted.items()])
        return ({e["type"]: size_named(e["size"]).name for e in entries},
                {e["type"]: e["quantity"] for e in entries if e["type"] != "release"})

    def logs(self, app: str, lines: int, follow: bool) -> Iterator[str]:
        session = self.api.post(f"/apps/{_segment(app)}/log-sessions", {"lines": min(lines, 1500), "tail": follow})
        return self.api.lines(session["logplex_url"])

    # --- domains and access --------------------------------------------------------------------
    def domains(self, app: str) -> list[str]:
        return [domain["hostname"] for domain in self.api.get(f"/apps/{_segment(app)}/domains")]

    def add_domain(self, app: str, host: str) -> list[str]:
        self.api.post(f"/apps/{_segment(app)}/domains", {"hostname": host})
        return self.domains(app)

    def remove_domain(self, app: str, host: str) -> list[str]:
        self.api.delete(f"/apps/{_segment(app)}/domains/{_segment(host)}")
        return self.domains(app)

    def access(self, app: str) -> Access:
        info = self.app(app)
        return Access(info["owner"], list(info["collaborators"]))

    def add_access(self, app: str, email: str) -> str:
        return self.api.post(f"/apps/{_segment(app)}/collaborators", {"user": email})["user"]["email"]

    def remove_access(self, app: str, email: str) -> str:
        return self.api.delete(f"/apps/{_segment(app)}/collaborators/{_segment(email)}")["user"]["email"]

    # --- webhooks ------------------------------------------------------------------------------
    def webhooks(self, app: str) -> list[dict[str, str]]:
        return [{"id": h["id"], "url": h["url"], "created_at": h["created_at"]}
                for h in self.api.get(f"/apps/{_segment(app)}/webhooks")]

    def add_webhook(self, app: str, url: str, secret: str | None) -> tuple[str, str]:
        hook = self.api.post(f"/apps/{_segment(app)}/webhooks",
                             {"url": url, "include": ["api:release"], "level": "notify",
                              **({"secret": secret} if secret is not None else {})})
        return hook["id"], hook.get("secret") or ""

    def remove_webhook(self, app: str, id_or_url: str) -> dict[str, str]:
        if "/" in id_or_url:  # a URL: a path segment cannot carry it, its id can
            found = next((h for h in self.webhooks(app) if h["url"] == id_or_url), None)
            if found is None:
                raise UsageError(f"no webhook {id_or_url!r} (see `gitpaas webhooks -a {app}`)")
            id_or_url = found["id"]
        hook = self.api.delete(f"/apps/{_segment(app)}/webhooks/{_segment(id_or_url)}")
        return {"id": hook["id"], "url": hook["url"], "created_at": hook["created_at"]}

    def deliveries(self, app: str, limit: int) -> list[dict[str, Any]]:
        return self.api.json(self.api.request("GET", f"/apps/{_segment(app)}/webhook-deliveries",
                                              headers={"Range": f"id ..; max={limit}, order=desc"}))

    # --- stacks --------------------------------------------------------------------------------
    def stacks(self, app: str) -> tuple[str, str]:
        info = self.app(app)
        return info["stack"], info["build_stack"]

    def set_stack(self, app: str, stack: str) -> tuple[str, str]:
        info = self.api.patch(f"/apps/{_segment(app)}", {"build_stack": stack})
        return info["stack"], info["build_stack"]

    # --- add-ons -------------------------------------------------------------------------------
    def addons(self, app: str | None) -> list[dict[str, Any]]:
        return self.api.get(f"/apps/{_segment(app)}/addons" if app else "/addons")

    def addon(self, name: str, app: str | None) -> dict[str, Any]:
        return self.api.get(f"/apps/{_segment(app)}/addons/{_segment(name)}" if app else f"/addons/{_segment(name)}")

    def create_addon(self, app: str, plan: str, attachment: str | None, name: str | None) -> tuple[dict, int | None]:
        previous = self.app(app)["current_release"]
        answer = self.api.post(f"/apps/{_segment(app)}/addons", {
            "plan": plan, **({"attachment": {"name": attachment}} if attachment else {}), **({"name": name} if name else {})})
        return answer["addon"], self._follow_change(app, answer, previous, f"the add-on {answer['addon']['name']} is attached")

    def destroy_addon(self, app: str, name: str) -> tuple[dict, int | None, str | None]:
        previous = self.app(app)["current_release"]
        answer = self.api.delete(f"/apps/{_segment(app)}/addons/{_segment(name)}")
        version = self._follow_change(app, answer, previous, f"the add-on {answer['addon']['name']} was removed")
        return answer["addon"], version, answer.get("backup")

    def _follow_change(self, app: str, answer: dict, previous: str | None, done: str) -> int | None:
        """Follow the release a change made (an add-on attached or removed); its failure keeps the change."""
        if answer.get("release") is None:
            return None
        try:
            return self._follow(app, answer["release"]).version
        except ReleaseFailed as exc:
            raise ChangeReleaseFailed(app, done, exc.version, exc.reason, int(previous[1:]) if previous else None,
                                      exc.exit_status) from None

    def addon_session(self, app: str, service: str, name: str | None, command: str | None, tty: bool) -> Channel:
        made = self.api.post(f"/apps/{_segment(app)}/addon-sessions", {
            "service": service, "addon": name, "command": command, "tty": tty})
        return RendezvousChannel.connect(made["attach_url"], made["rendezvous_fingerprint"])

    # --- PostgreSQL backups ---------------------------------------------------------------------
    def backups(self, app: str | None) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
        if not app:
            raise UsageError("which app's backups? from another machine, name it: gitpaas pg:backups -a APP")
        answer = self.api.get(f"/apps/{_segment(app)}/pg-backups")
        return answer["backups"], {(app, name) for name in answer["addons"]}

    def capture_backup(self, app: str, name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        backup = self.api.post(f"/apps/{_segment(app)}/pg-backups", {"addon": name})
        return backup, self.addon(backup["addon"], app)

    def download_backup(self, app: str, backup_id: str, target: Path) -> int:
        chunks = self.api.stream(self.api.url(f"/apps/{_segment(app)}/pg-backups/{_segment(backup_id)}/dump"))
        first = next(chunks, b"")  # (an error is said before the file is touched)
        partial = target.with_name(f".{target.name}.part")
        try:
            with open(partial, "wb") as sink:
                sink.write(first)
                for chunk in chunks:  # (a connection lost half-way leaves no truncated dump behind)
                    sink.write(chunk)
            partial.replace(target)
        except OSError as exc:
            raise UsageError(f"cannot write {target.name}: {exc.strerror}") from None
        finally:
            partial.unlink(missing_ok=True)
        return target.stat().st_size

    def delete_backup(self, app: str, backup_id: str, confirm: str | None) -> dict[str, Any]:
        listed, _ = self.backups(app)
        backup = next((b for b in listed if b["id"] == backup_id), None)
        if backup is None:
            raise RemoteError(f"no backup {backup_id!r} of {app} (see `gitpaas pg:backups -a {app}`)", "not_found", 404)
        confirm_backup_deletion(app, backup_id, confirm)
        return self.api.delete(f"/apps/{_segment(app)}/pg-backups/{_segment(backup_id)}")

    def restore_backup(self, app: str, backup_id: str, name: str | None) -> dict[str, Any]:
        return self.api.post(f"/apps/{_segment(app)}/pg-backups/{_segment(backup_id)}/actions/restore", {"addon": name})

    def schedule_backups(self, app: str, name: str | None, at: str | None, retain: int) -> dict[str, Any]:
        return self.api.json(self.api.request("PUT", f"/apps/{_segment(app)}/pg-backups-schedule",
                                              {"addon": name, "at": at, "retain": retain}))

    # --- maintenance and drains ----------------------------------------------------------------
    def maintenance(self, app: str) -> bool:
        return bool(self.app(app)["maintenance"])

    def set_maintenance(self, app: str, on: bool) -> bool:
        before = self.maintenance(app)
        self.api.patch(f"/apps/{_segment(app)}", {"maintenance": on})
        return before != on

    def drains(self, app: str) -> list[dict[str, Any]]:
        return [{key: d[key] for key in ("url", "id", "token", "created_at", "status")}
                for d in self.api.get(f"/apps/{_segment(app)}/log-drains")]

    def add_drain(self, app: str, url: str) -> dict[str, Any]:
        d = self.api.post(f"/apps/{_segment(app)}/log-drains", {"url": url})
        return {key: d[key] for key in ("url", "id", "token", "created_at")}

    def remove_drain(self, app: str, id_or_url: str) -> dict[str, Any]:
        d = self.api.delete(f"/apps/{_segment(app)}/log-drains/{_segment(id_or_url)}")
        return {key: d[key] for key in ("url", "id", "token", "created_at")}

    # --- one-off dynos -------------------------------------------------------------------------
    def _create_dyno(self, app: str, command: str, size: str | None, env: dict[str, str], attach: bool,
                     tty: bool) -> dict[str, Any]:
        return self.api.post(f"/apps/{_segment(app)}/dynos", {
            "command": command, "attach": attach, "env": env, "force_no_tty": not tty,
            **({"size": size} if size else {})})

    def run(self, app: str, command: str, size: str | None, env: dict[str, str], tty: bool) -> tuple[str, Channel]:
        dyno = self._create_dyno(app, command, size, env, True, tty)
        return dyno["name"], RendezvousChannel.connect(dyno["attach_url"], dyno["rendezvous_fingerprint"])

    def run_detached(self, app: str, command: str, size: str | None, env: dict[str, str]) -> str:
        return self._create_dyno(app, command, size, env, False, False)["name"]

    # --- pipelines and review apps -------------------------------------------------------------
    def pipelines(self) -> list[dict[str, Any]]:
        return self.api.get("/pipelines")

    def pipeline(self, name: str) -> dict[str, Any]:
        return self.api.get(f"/pipelines/{_segment(name)}")

    def create_pipeline(self, name: str) -> dict[str, Any]:
        return self.api.post("/pipelines", {"name": name})

    def couple(self, name: str, app: str, stage: str) -> dict[str, Any]:
        found = self.pipeline(name)
        self.api.post("/pipeline-couplings", {"app": app, "pipeline": found["id"], "stage": stage})
        return self.pipeline(found["id"])

    def _coupling(self, app: str) -> dict[str, Any]:
        return self.api.get(f"/apps/{_segment(app)}/pipeline-couplings")

    def move(self, app: str, stage: str) -> str:
        coupling = self._coupling(app)
        self.api.patch(f"/pipeline-couplings/{coupling['id']}", {"stage": stage})
        return coupling["pipeline"]["name"]

    def uncouple(self, app: str) -> str:
        coupling = self._coupling(app)
        self.api.delete(f"/pipeline-couplings/{coupling['id']}")
        return coupling["pipeline"]["name"]

    def destroy_pipeline(self, name: str) -> str:
        found = self.pipeline(name)
        self.api.delete(f"/pipelines/{found['id']}")
        return found["name"]

    def diff(self, app: str) -> tuple[str | None, list[dict[str, Any]]]:
        answer = self.api.get(f"/apps/{_segment(app)}/pipeline-diff")
        return answer["source_commit"], answer["differences"]

    def promote(self, app: str, to: list[str] | None, announce) -> list[dict[str, Any]]:
        """Ask for the promotion, then tell each target's release as it happens (its story,
        streamed), until every target is done."""
        coupling = self._coupling(app)
        targets = [{"app": {"id": self.app(name)["id"]}} for name in to or []]
        promotion = self.api.post("/pipeline-promotions", {
            "pipeline": {"id": coupling["pipeline"]["id"]}, "source": {"app": {"id": coupling["app"]["id"]}},
            "targets": targets})
        announce(promotion["source"], [target["app"] for target in promotion["targets"]])
        for index, target in enumerate(promotion["targets"]):
            while target["status"] == "pending" and target["release"] is None:
                time.sleep(POLL)
                promotion = self.api.get(f"/pipeline-promotions/{promotion['id']}")
                target = promotion["targets"][index]
            if target["release"] is not None:
                sys.stdout.write(f"-----> Promoting to {target['app']}: v{target['release']['version']}\n")
                record = self.api.get(f"/apps/{_segment(target['app'])}/releases/{target['release']['version']}")
                try:
                    self._follow(target["app"], record)
                except ReleaseFailed:
                    pass  # the target's status says so, with the others'
        while promotion["status"] == "pending":
            time.sleep(POLL)
            promotion = self.api.get(f"/pipeline-promotions/{promotion['id']}")
        return promotion["targets"]

    def enable_review_apps(self, name: str, app: str, autodestroy: bool, stale_days: int | None) -> dict[str, Any]:
        found = self.pipeline(name)
        self.api.patch(f"/pipelines/{found['id']}/review-app-config", {
            "app": app, "automatic_review_apps": True, "destroy_stale_apps": autodestroy,
            **({"stale_days": stale_days} if stale_days is not None else {})})
        return self.pipeline(found["id"])

    def disable_review_apps(self, name: str) -> dict[str, Any]:
        found = self.pipeline(name)
        self.api.delete(f"/pipelines/{found['id']}/review-app-config")
        return self.pipeline(found["id"])

    def review_apps(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found = self.pipeline(name)
        return found, self.api.get(f"/pipelines/{found['id']}/review-apps")

    def review_config(self, name: str, set_values: dict[str, str] | None = None,
                      unset_keys: list[str] | None = None) -> dict[str, str]:
        path = f"/pipelines/{self.pipeline(name)['id']}/stage/review/config-vars"
        if set_values or unset_keys:
            return self.api.patch(path, {**(set_values or {}), **{key: None for key in unset_keys or []}})
        return self.api.get(path)


class RendezvousChannel:
    """A one-off dyno on a server, reached through its rendezvous (``gitpaas.api.rendezvous``):
    TLS to the host and port of its ``attach_url``, the certificate pinned by the fingerprint the
    API answered with (over the login's own connection), framed streams."""

    def __init__(self, connection: ssl.SSLSocket) -> None:
        self.connection = connection
        self.status: int | None = None
        self.sending = threading.Lock()

    @classmethod
    def connect(cls, attach_url: str, pinned: str) -> "RendezvousChannel":
        parts = urlsplit(attach_url)
        if parts.scheme != "rendezvous" or not parts.hostname or not parts.port:
            raise EnvironmentProblem("the server answered with an attach URL this client cannot use")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # checked below, by its fingerprint: it is self-signed
        try:
            raw = socket.create_connection((parts.hostname, parts.port), timeout=30)
            connection = context.wrap_socket(raw)
            der = connection.getpeercert(binary_form=True) or b""
            if hashlib.sha256(der).hexdigest() != pinned:
                connection.close()
                raise EnvironmentProblem(f"the rendezvous at {parts.hostname}:{parts.port} presented another "
                                         "certificate than the server announced: not attaching")
            connection.sendall(f"{parts.path.lstrip('/')}?frames=1\r\n".encode())
            greeting = b""
            while not greeting.endswith(b"\n"):
                chunk = connection.recv(1)
                if not chunk or len(greeting) > 64:
                    raise OSError("the rendezvous closed the connection")
                greeting += chunk
            connection.settimeout(None)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot attach to the dyno at {parts.hostname}:{parts.port} ({exc})") from None
        return cls(connection)

    def read(self) -> tuple[int, bytes] | None:
        got = read_frame(self.connection)
        if got is None:
            return None
        kind, data = got
        if kind == EXIT:
            self.status = int(data) if data.isdigit() else 1
            return None
        return got

    def _send(self, kind: int, data: bytes = b"") -> None:
        with self.sending:
            try:
                self.connection.sendall(frame(kind, data))
            except OSError:
                pass  # the dyno ended meanwhile: read() says so

    def write(self, data: bytes) -> None:
        self._send(STDIN, data)

    def close_stdin(self) -> None:
        self._send(EOF)

    def resize(self, rows: int, columns: int) -> None:
        self._send(RESIZE, f"{rows} {columns}".encode())

    def stop(self) -> None:
        try:
            self.connection.close()  # a dropped connection stops the dyno
        except OSError:
            pass

    def finish(self) -> int:
        try:
            self.connection.close()
        except OSError:
            pass
        if self.status is None:
            raise EnvironmentProblem("the connection to the dyno was lost before it ended (it was stopped)")
        return self.status
