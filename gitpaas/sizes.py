"""Dyno sizes: what each process type may use. Pure: a small table, and the one way to read a name.

Names are Heroku's, so ``heroku ps:type web=standard-2x`` means the same thing here; each is a
memory limit (the engine kills a process that exceeds it: Heroku's R15), a CPU share (a relative
weight: a standard-2x process gets twice the CPU of a standard-1x one when both are busy, and any
idle CPU otherwise) and a limit on the number of processes and threads it may run (a fork bomb
stays inside its dyno). The default suits a small server: 512 MB, one share.

    size            memory    CPU share   processes
    eco             256 MB    0.5         128
    basic           512 MB    0.5         256
    standard-1x     512 MB    1           256      (the default)
    standard-2x     1 GB      2           512
    performance-m   2.5 GB    4           1024
    performance-l   14 GB     8           4096
"""

from __future__ import annotations

from dataclasses import dataclass

from gitpaas.errors import UsageError


@dataclass(frozen=True)
class Size:
    name: str
    memory_mb: int
    #: relative CPU weight: 1.0 is a standard-1x (Docker's cpu-shares 1024)
    cpu_share: float
    pids: int
    #: as Heroku's API and CLI write it (``Standard-1X``)
    display: str = ""

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def cpu_shares(self) -> int:
        return int(1024 * self.cpu_share)

    def describe(self) -> str:
        memory = f"{self.memory_mb / 1024:g} GB" if self.memory_mb >= 1024 else f"{self.memory_mb} MB"
        return f"{memory}, {self.cpu_share:g}× CPU, {self.pids} processes"


SIZES: dict[str, Size] = {size.name: size for size in (
    Size("eco", 256, 0.5, 128, "Eco"),
    Size("basic", 512, 0.5, 256, "Basic"),
    Size("standard-1x", 512, 1.0, 256, "Standard-1X"),
    Size("standard-2x", 1024, 2.0, 512, "Standard-2X"),
    Size("performance-m", 2560, 4.0, 1024, "Performance-M"),
    Size("performance-l", 14336, 8.0, 4096, "Performance-L"),
)}
DEFAULT = "standard-1x"
#: the names Heroku also accepts for the standard sizes
_ALIASES = {"1x": "standard-1x", "2x": "standard-2x"}


def parse(name: str) -> str:
    """The size's canonical name (``Standard-2X`` → ``standard-2x``), or UsageError listing the sizes."""
    candidate = name.strip().lower() if isinstance(name, str) else ""
    candidate = _ALIASES.get(candidate, candidate)
    if candidate not in SIZES:
        raise UsageError(f"no dyno size {name!r}: use one of {', '.join(SIZES)}")
    return candidate


def get(name: str | None) -> Size:
    """The size called ``name`` (the default for None)."""
    return SIZES[parse(name) if name else DEFAULT]


def memory_kill(name: str | None) -> str:
    """How a process the engine killed at its size's memory limit is described (Heroku's R15)."""
    limit = get(name)
    return f"killed at its {limit.memory_mb} MB limit ({limit.name})"

