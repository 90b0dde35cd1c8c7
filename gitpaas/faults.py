"""Named points where the fault-injection tests stop gitpaas dead, exactly as ``kill -9`` would.

``GITPAAS_FAULT=NAME`` in the environment of the process running a deploy makes it SIGKILL itself
on reaching the point ``NAME`` — points too brief to hit from outside with a signal at the right
moment. With the variable unset (always, outside the tests) a point does nothing.

    build     the build is about to start (no release recorded yet)
    release   the release command runs (vN pending, its container up)
    health    the new processes run but are not checked, nor routed to, yet
    swap      the router sends traffic to the new processes; the old ones still run
    retire    the old processes are being retired; vN is not recorded as succeeded yet
"""

from __future__ import annotations

import os
import signal

from gitpaas.settings import Settings

POINTS = ("build", "release", "health", "swap", "retire")


def reached(settings: Settings, point: str) -> None:
    if settings.environ.get("GITPAAS_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
