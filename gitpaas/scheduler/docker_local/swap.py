"""How docker-local swaps: the one place it decides which containers start, serve and retire.

Every change of what runs goes through :func:`converge` — a new release's swap, ``ps:scale``,
``ps:restart``, a new domain and recovery after a crash — so each gets the same guarantee: no
request is lost.

1. **keep** the live containers of the wanted release, at the wanted size, within the wanted
   quantities (unless asked to replace them); dead ones (exited, not restarting: after a reboot,
   say) are removed;
2. **start** the missing ones beside the old ones;
3. **check** them (``health.py``): web ones accept connections and pass app.json's checks, every
   new one stays up through its startup window. A failure stops the new ones and raises: the
   router and the old containers are untouched;
4. **route**: tell the router the new set of web endpoints, switched in one graceful reload;
5. **retire** the rest in the background: renamed ``-retiring`` at once (``ps`` shows ``stopping``),
   then, in a detached process, drain, SIGTERM and SIGKILL after the grace period.
"""

from __future__ import annotations

import subprocess
import sys
import time

from gitpaas import faults, procfile
from gitpaas.output import Output
from gitpaas.scheduler import Deployment, DeployReport, Router
from gitpaas.scheduler.docker_local.containers import SPEC, Containers, Dyno
from gitpaas.scheduler.docker_local.health import HealthCheck
from gitpaas.scheduler.docker_local.retire import MODULE as RETIRER
from gitpaas.settings import Settings


def converge(containers: Containers, router: Router, settings: Settings, deployment: Deployment,
             output: Output) -> DeployReport:
    release, formation = deployment.release, deployment.formation
    current = [d for d in containers.dynos(deployment.app) if not d.process.one_off and not d.process.retiring]
    dead = [d for d in current if d.dead]
    running = [d for d in current if not d.dead]
    keep = [d for d in running if d.process.release_version == release.version
            and d.container.labels.get(SPEC) == containers.spec(release, deployment.sizes.get(d.process.type), d.process.type)
            and d.process.index <= formation.get(d.process.type, 0) and d.name not in deployment.replace]
    kept = {(d.process.type, d.process.index) for d in keep}
    retire = [d for d in running if d not in keep]
    wanted = [(process_type, index) for process_type, quantity in formation.items()
              for index in range(1, quantity + 1) if (process_type, index) not in kept]
    report = DeployReport(started=[f"{t}.{i}" for t, i in wanted], retired=[d.name for d in retire])
    if wanted:
        output.stage("Starting " + ", ".join(report.started) + f" of v{release.version}")

    if dead:
        containers.stop(dead, grace=0)  # nothing to drain: they serve nothing
    phase = time.monotonic()
    new: list[Dyno] = []
    try:
        for process_type, index in wanted:
            new.append(containers.start(release, process_type, index, deployment.sizes.get(process_type)))
        if new:
            faults.reached(settings, "health")
        checked = HealthCheck(containers, release.version, host=deployment.hosts[0], boot_timeout=settings.boot_timeout,
                              startup_window=settings.startup_window).run(new, release.healthchecks)
        report.health_seconds = round(time.monotonic() - phase, 2)
        phase = time.monotonic()
        serving = keep + new
        router.set_app(deployment.app, list(deployment.hosts),
                       [d.address for d in serving if d.process.type == procfile.WEB and d.address])
        if new:
            faults.reached(settings, "swap")
    except BaseException:
        containers.stop(new, grace=0)
        raise
    for line in checked:
        output.info(line)
    output.info(f"Routing {settings.web_url(deployment.app)} to v{release.version} "
                f"({sum(1 for d in serving if d.process.type == procfile.WEB)} web)")
    if retire:
        output.info(f"Retiring {len(retire)} old process{'es' if len(retire) != 1 else ''} in the background "
                    f"(SIGTERM, SIGKILL after {settings.stop_timeout:g} s)")
        try:
            retire_in_background(containers, settings, retire)
            faults.reached(settings, "retire")
        except Exception as exc:  # noqa: BLE001 — the new processes serve already: this must not fail the
            # deploy; the next converge finds the old ones still running and retires them
            output.warn(f"Could not retire the old processes yet ({exc}); the next deploy or scale will")
    report.swap_seconds = round(time.monotonic() - phase, 2)
    return report


def retire_in_background(containers: Containers, settings: Settings, dynos: list[Dyno]) -> None:
    """Hand ``dynos`` to a detached ``python -m …docker_local.retire``, then mark them stopping; return at once.

    In that order: if the retirer cannot be started, they are not marked, so the next converge
    still sees them running and retires them; once marked, a retirer owns them (it drains first,
    so the mark always comes before the SIGTERM).
    """
    log = settings.home / "logs" / "retire.log"
    subprocess.Popen(
        [sys.executable, "-m", RETIRER, "--log", str(log),
         "--grace", str(settings.stop_timeout), "--drain", str(settings.drain_seconds),
         *[d.process.id for d in dynos]],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    for dyno in dynos:
        containers.mark_retiring(dyno)
