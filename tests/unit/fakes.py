"""In-memory fakes of the Scheduler protocol and the router, for unit tests of the pipeline and CLI."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

from gitpaas.errors import BootFailed
from gitpaas.release import now_iso
from gitpaas.scheduler import Process, ProcessSpec, RunResult


class FakeScheduler:
    """The Scheduler protocol in memory. The release phase prints ``run_output`` and returns ``run_result``."""

    def __init__(self) -> None:
        self.running: list[Process] = []
        self.run_output = ["Migrating…", "done"]
        self.run_result = RunResult(exit_status=0)
        self.run_raises: BaseException | None = None
        self.boot_failure: BootFailed | None = None
        self.runs: list[tuple[ProcessSpec, float]] = []
        self.started: list[Process] = []
        self.stopped: list[tuple[list[str], float]] = []
        self.destroyed: list[str] = []
        self.restarted: list[str] = []
        self._ids = itertools.count(1)

    def start(self, specs: list[ProcessSpec]) -> list[Process]:
        new = []
        for spec in specs:
            number = next(self._ids)
            new.append(Process(
                id=f"{number:064x}", app=spec.app, type=spec.type, index=spec.index,
                release_version=spec.release_version, release_id=spec.release_id, command=spec.command or "",
                state="up", created_at=now_iso(), address=("127.0.0.1", 40000 + number) if spec.type == "web" else None,
            ))
        self.running.extend(new)
        self.started.extend(new)
        return new

    def wait_until_serving(self, processes: list[Process], timeout: float) -> None:
        if self.boot_failure is not None and processes:
            raise self.boot_failure

    def processes(self, app: str) -> list[Process]:
        return [p for p in self.running if p.app == app]

    def stop(self, processes: list[Process], grace: float) -> None:
        ids = {p.id for p in processes}
        self.stopped.append(([f"{p.name}@v{p.release_version}" for p in processes], grace))
        self.running = [p for p in self.running if p.id not in ids]

    def run_once(self, spec: ProcessSpec, on_line: Callable[[str], None], timeout: float) -> RunResult:
        self.runs.append((spec, timeout))
        for line in self.run_output:
            on_line(line)
        if self.run_raises is not None:
            raise self.run_raises
        return self.run_result

    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]:
        yield from []

    def retire(self, processes: list[Process], grace: float, drain: float) -> None:
        self.stop(processes, grace)

    def tail(self, process: Process) -> str:
        return ""

    def kill(self, process: Process) -> None:
        self.running = [p for p in self.running if p.id != process.id]

    def restart(self, process: Process, grace: float) -> None:
        self.restarted.append(process.name)

    def remove_release(self, app: str, version: int) -> None:
        self.running = [p for p in self.running if not (p.app == app and p.release_version == version)]

    def destroy_app(self, app: str) -> None:
        self.destroyed.append(app)
        self.running = [p for p in self.running if p.app != app]


class FakeRouter:
    """Remembers where each app's hosts go; ``failure`` makes the next change fail like a bad nginx -t."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, tuple[list[str], list[tuple[str, int]]]] = {}
        self.failure: Exception | None = None

    def app_config_path(self, app: str) -> Path:
        return self.root / f"{app}.conf"

    def set_app(self, app: str, hosts: list[str], backends: list[tuple[str, int]]) -> None:
        if self.failure is not None:
            raise self.failure
        self.routes[app] = (list(hosts), list(backends))
        self.root.mkdir(parents=True, exist_ok=True)
        self.app_config_path(app).write_text(repr(self.routes[app]))

    def remove_app(self, app: str) -> None:
        self.routes.pop(app, None)
        self.app_config_path(app).unlink(missing_ok=True)


class FakeSlugs:
    """Slug image tags in memory: tag → image id."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}

    def tag(self, source: str, target: str) -> None:
        self.tags[target] = self.tags.get(source, source)

    def untag(self, tag: str) -> None:
        self.tags.pop(tag, None)

    def exists(self, tag: str | None) -> bool:
        return tag in self.tags

    def image_id(self, tag: str) -> str | None:
        return self.tags.get(tag)
