"""The benchmarks' report: the JSON results under bench/results/ → summary.json, the tables in
bench/results/README.md (with the machine and each target met or missed) and the chart of where
deploy time goes (deploy_phases.png).

    .venv/bin/python bench/report.py     # redraw from the results already there
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from common import RESULTS, ROOT

NAMES = ("deploy_speed", "history", "buildpack_cache", "zero_downtime", "addons", "many_apps", "swarm_scale")
CHART = RESULTS / "deploy_phases.png"
#: "flat" listing: the largest history may cost at most this much more than the smallest (noise)
FLAT = 1.5
#: (key in the release record's timings or the benchmark, label, colour)
SEGMENTS = (
    ("outside", "git push / CLI start-up (before the record)", "#bdbdbd"),
    ("receive", "receive (read the push, Procfile)", "#9ecae1"),
    ("build", "build (docker build)", "#3182bd"),
    ("release", "release phase (`release: true` container)", "#fd8d3c"),
    ("health", "health (boot + startup window)", "#e6550d"),
    ("swap", "swap (router switch, retire in background)", "#31a354"),
    ("floor_build", "raw Docker: docker build", "#756bb1"),
    ("floor_run", "raw Docker: docker run → first 200", "#bcbddc"),
)


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _run(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), None) if Path("/proc/meminfo").exists() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "kernel": platform.release(),
            "system": platform.platform(), "python": platform.python_version(),
            "docker": _run("docker", "version", "--format", "{{.Server.Version}}"),
            "docker_storage": _run("docker", "info", "--format", "{{.Driver}}"),
            "nginx": _run("/usr/sbin/nginx", "-v") or _nginx_version(),
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def _nginx_version() -> str:
    try:
        return subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10).stderr.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --- targets ---------------------------------------------------------------------------------

#: issue 18's targets: ratio limits against the raw-Docker floor, measured in the same run
LIMITS = {"redeploy": 1.6, "rollback": 2.2, "config_set": 2.2}
#: seconds a command may take from start to exit, interpreter included
COMMAND_LIMITS = {"help": 0.10, "releases": 0.15, "ps": 0.15, "config": 0.15}
COMMAND_LABELS = {"help": "`gitpaas --help`", "releases": "`gitpaas releases -n 15`", "ps": "`gitpaas ps`",
                  "config": "`gitpaas config`"}
#: two hundred apps: the Nth app's redeploy and a router switch against one app's; listing them
MANY = {"redeploy": 1.2, "switch": 1.5, "listing_s": 0.3}


def targets(results: dict) -> list[dict]:
    """Each target of issue 18 with the measured figure: met or missed (never asserted anywhere)."""
    out = []
    speed = results.get("deploy_speed")
    if speed:
        for operation, what in (("redeploy", "Redeploy within {}× of `docker build` + `docker run` + first 200"),
                                ("rollback", "rollback within {}× of one `docker run` + first 200"),
                                ("config_set", "config:set within {}× of one `docker run` + first 200")):
            limit, ratio = LIMITS[operation], speed["ratios"][operation]["default"]
            figure = f"{ratio:.2f}× ({speed['seconds'][f'{operation}_default']['median']:.2f} s against " \
                     f"{speed['seconds'][f'floor_{operation}']['median']:.2f} s)"
            out.append({"target": what.format(limit), "figure": figure, "met": ratio <= limit})
        commands = speed.get("commands")
        if commands:
            bare = commands["seconds"]["python"]["median"]
            for name, limit in COMMAND_LIMITS.items():
                took = commands["seconds"][name]["median"]
                out.append({"target": f"{COMMAND_LABELS[name]} in under {limit:g} s, interpreter included",
                            "figure": f"{took:.3f} s (a bare `python -c pass`: {bare:.3f} s)", "met": took < limit})
    cache = results.get("buildpack_cache")
    if cache:
        for app in cache.get("apps", {}) or {"python": cache}:
            figures = cache["apps"][app] if "apps" in cache else cache
            speedup = 1 / figures["warm_over_cold_build"]
            out.append({"target": f"Warm buildpack build at least 5× faster than cold ({figures.get('label', app)})",
                        "figure": f"{speedup:.1f}× faster (build to the slug image; the buildpack's compile step "
                                  f"alone {1 / figures['warm_over_cold_compile']:.1f}×)",
                        "met": speedup >= 5})
    many = results.get("many_apps")
    if many:
        n, ratios, first, last = many["apps"], many["ratios"], many["first"], many["last"]
        floor = (f"; the raw-Docker floor alternated with it {ratios['floor']:.2f}× ({last['floor_s']['median']:.2f} s "
                 f"against {first['floor_s']['median']:.2f} s), so {ratios['redeploy_over_floor']:.2f}× against the floor"
                 if "floor" in ratios else "")
        if "start_app_network" in ratios:
            floor += (f"; the engine's own start of a container on the app's network rose "
                      f"{ratios['start_app_network']:.2f}× ({last['start_app_network_s']['median'] * 1000:.0f} ms against "
                      f"{first['start_app_network_s']['median'] * 1000:.0f} ms)")
        out.append({"target": f"The {n}th app's redeploy within {MANY['redeploy']}× of the first's",
                    "figure": f"{ratios['redeploy']:.2f}× ({last['redeploy_s']['median']:.2f} s against "
                              f"{first['redeploy_s']['median']:.2f} s, {last['redeploy_s']['runs']} runs each{floor})",
                    "met": ratios["redeploy"] <= MANY["redeploy"]})
        out.append({"target": f"A router switch with {n} apps within {MANY['switch']}× of one with 1",
                    "figure": f"{ratios['switch']:.2f}× ({last['switch_s']['median'] * 1000:.1f} ms against "
                              f"{first['switch_s']['median'] * 1000:.1f} ms)", "met": ratios["switch"] <= MANY["switch"]})
        for key, label in (("cli_apps_s", "`gitpaas apps`"), ("api_apps_s", "`GET /apps`")):
            took = last[key]["median"]
            out.append({"target": f"{label} with {n} apps in under {MANY['listing_s']:g} s",
                        "figure": f"{took:.3f} s", "met": took < MANY["listing_s"]})
        if many.get("stopped_early"):
            out.append({"target": f"{many['apps_wanted']} apps on one box", "figure": f"stopped at {n} (time limit)",
                        "met": False})
    zero = results.get("zero_downtime")
    if zero:
        during, rest = zero["during_deploys"], zero["at_rest"]
        changes = zero.get("during_changes") or {"failed": 0, "requests": 0}
        out.append({"target": "Zero failed requests during deploys, rollbacks, scaling and restarts",
                    "figure": f"{during['failed']} failed of {during['requests']:,} during {zero['deploys']} deploys; "
                              f"{changes['failed']} of {changes['requests']:,} during a rollback, scaling, restarts "
                              "and a config change",
                    "met": during["failed"] == 0 and changes["failed"] == 0 and bool(zero.get("during_changes"))})
        p99 = during["p99_ms"] / rest["p99_ms"]
        router = (f"; as the router logged them {zero['router_p99_ratio']:.2f}× ({during['router_p99_ms']:.0f} ms "
                  f"against {rest['router_p99_ms']:.0f} ms)" if zero.get("router_p99_ratio") else "")
        rounds = zero.get("per_round") or []
        spread = [r["p99_ratio"] for r in rounds if r.get("p99_ratio") is not None]
        pooled = (f"; pooled over {len(rounds)} rounds alternating deploys and rest, each round's own "
                  f"{min(spread):.2f}–{max(spread):.2f}×" if len(spread) > 1 else "")
        out.append({"target": "p99 latency during deploys within 2× of at rest",
                    "figure": f"{p99:.2f}× as the load's client saw them ({during['p99_ms']:.1f} ms against "
                              f"{rest['p99_ms']:.1f} ms){router}{pooled}", "met": p99 <= 2})
    history = results.get("history")
    if history:
        small, large = history["sizes"][0], history["sizes"][-1]
        api = history[f"api_ratio_{large}_over_{small}"]
        cli = history[f"cli_ratio_{large}_over_{small}"]
        store = history[f"store_ratio_{large}_over_{small}"]
        out.append({"target": f"Listing the latest releases flat from {small:,} to {large:,} releases "
                              f"(at most {FLAT}× here)",
                    "figure": f"{large:,}/{small:,}: API {api:.2f}×, store {store:.2f}×, CLI {cli:.2f}× "
                              f"(API {history['api_ms'][str(large)]['median']:.0f} ms against "
                              f"{history['api_ms'][str(small)]['median']:.0f} ms)",
                    "met": max(api, store, cli) <= FLAT})
    return out


# --- tables ----------------------------------------------------------------------------------

def _cell(stats: dict, unit: str = "s", digits: int = 2) -> str:
    return f"{stats['median']:.{digits}f} {unit} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


#: deploy_speed's homes: the default, one with the shortest startup window, one without the fork server,
#: one whose router reloads nginx for every switch, one whose Dockerfiles the classic builder builds,
#: one that starts a release's processes only after its release command, one that reaches web
#: processes on published loopback ports;
#: each with its suffix in the benchmark table, in the phase table and on the chart
HOMES = {
    "default": ("", "", ""),
    "no_window": (", `GITPAAS_STARTUP_WINDOW={window}`", ", window {window}", ",\nGITPAAS_STARTUP_WINDOW={window}"),
    "no_forkserver": (", every command in its own process (`GITPAAS_FORKSERVER=0`)", ", no fork server",
                      ", no fork server\n(GITPAAS_FORKSERVER=0)"),
    "router_reload": (", every router switch an nginx reload (`GITPAAS_ROUTER_LUA=0`)", ", router reloads",
                      ", router reloads\n(GITPAAS_ROUTER_LUA=0)"),
    "classic_build": (", the engine's classic builder (`GITPAAS_DOCKER_BUILDER=classic`)", ", classic builder",
                      ", classic builder\n(GITPAAS_DOCKER_BUILDER=classic)"),
    "no_hold": (", new processes started only after the release command (`GITPAAS_HOLD_PROCESSES=0`)",
                ", not held", ", not held\n(GITPAAS_HOLD_PROCESSES=0)"),
    "published_ports": (", web processes reached on a published loopback port (`GITPAAS_PUBLISH_PORTS=1`)",
                        ", published ports", ", published ports\n(GITPAAS_PUBLISH_PORTS=1)"),
}


def deploy_speed_tables(speed: dict) -> str:
    seconds, window = speed["seconds"], speed["startup_window_row"]
    floor_builder = f" (build: {speed['floor_builder']})" if speed.get("floor_builder") else ""
    rows = [
        ("redeploy", "Redeploy: `git push` → the new body answers through the router",
         "`docker build` + `docker run` + first 200", f"{LIMITS['redeploy']:g}"),
        ("rollback", "Rollback: `gitpaas rollback vN` → vN's body answers", "`docker run` of a built image + first 200",
         f"{LIMITS['rollback']:g}"),
        ("config_set", "config:set: `gitpaas config:set K=V` → /env shows it", "`docker run -e K=V` + first 200",
         f"{LIMITS['config_set']:g}"),
    ]
    lines = [f"| {speed['runs']} alternated runs, median (min–max) | gitpaas | raw-Docker floor | ratio | target |",
             "|---|---:|---:|---:|---:|"]
    for operation, label, floor_label, target in rows:
        base = seconds[f"floor_{operation}"]
        for home, suffix in ((home, HOMES[home][0].format(window=window)) for home in HOMES):
            if f"{operation}_{home}" not in seconds:
                continue
            lines.append(f"| {label}{suffix} | {_cell(seconds[f'{operation}_{home}'])} | {floor_label}: {_cell(base)} "
                         f"| {speed['ratios'][operation][home]:.2f} | ≤ {target} |")
    lines += ["", "Where the time goes (median seconds of each phase in the release records; "
              "\"outside\" is the time before the record starts: git and the pre-receive hook's start-up, or "
              "the CLI's):", "",
              "| | outside | receive | build | release | health | swap |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, phases in speed["phases_s"].items():
        home = next(home for home in HOMES if name.endswith("_" + home))
        operation = name.removesuffix("_" + home)
        label = operation.replace("config_set", "config:set") + HOMES[home][1].format(window=window)
        lines.append(f"| {label} | " + " | ".join(f"{phases[key]:.2f}" for key in
                                                  ("outside", "receive", "build", "release", "health", "swap")) + " |")
    lines.append(f"| raw-Docker floor{floor_builder} | | | {seconds['floor_build']['median']:.2f} | | "
                 f"{seconds['floor_run_after_build']['median']:.2f} (run → 200) | |")
    if speed.get("commands"):
        lines += ["", "Commands, each a new process timed from start to exit:", "", commands_table(speed["commands"])]
    parallel = speed.get("parallel")
    if parallel:
        runs, apps = parallel["seconds"]["sequential"]["runs"], parallel["apps"]
        one_by_one, at_once = (_cell(parallel["seconds"][mode], digits=1) for mode in ("sequential", "concurrent"))
        lines += ["", f"| {apps} apps redeployed, {runs} alternated runs, median (min–max) "
                  "| one after another | all at once | at once / one after another |", "|---|---:|---:|---:|",
                  f"| wall time of the {apps} `git push`es | {one_by_one} | {at_once} "
                  # (from the medians: the stored ratio is rounded to 3 places already)
                  f"| {parallel['seconds']['concurrent']['median'] / parallel['seconds']['sequential']['median']:.2f} |"]
    return "\n".join(lines)


def history_table(history: dict) -> str:
    sizes = history["sizes"]
    small, large = sizes[0], sizes[-1]
    lines = [f"| newest {history['limit']}, {history['runs']} rounds, median (min–max) | "
             + " | ".join(f"{size:,} releases" for size in sizes) + f" | {large:,} / {small:,} |",
             "|---|" + "---:|" * (len(sizes) + 1)]
    for kind, label in (("api", "API `GET /apps/APP/releases`, `Range: version ..; max=15, order=desc`"),
                        ("store", "in process: `ReleaseStore.list(limit=15)`"),
                        ("cli", "`gitpaas releases -a APP -n 15` (a new process)"),
                        ("cli_startup", "`gitpaas --version` (the CLI's start-up alone)")):
        lines.append(f"| {label} | " + " | ".join(_cell(history[f'{kind}_ms'][str(size)], 'ms', 1) for size in sizes)
                     + f" | {history[f'{kind}_ratio_{large}_over_{small}']:.2f} |")
    return "\n".join(lines)


def buildpack_table(cache: dict) -> str:
    apps = cache.get("apps") or {"python": {"label": "the Python sample", **cache}}
    lines = []
    for figures in apps.values():
        lines += ["", f"{figures['label']}:", "",
                  f"| {cache['runs']} runs, median (min–max) | cold | warm | warm/cold |", "|---|---:|---:|---:|"]
        for what, label in (("compile", "compile (the buildpack)"), ("build", "build (to the slug image)"),
                            ("push", "whole `git push`")):
            cold, warm = _cell(figures[f"cold_{what}_s"], digits=1), _cell(figures[f"warm_{what}_s"], digits=1)
            lines.append(f"| {label} | {cold} | {warm} | {figures[f'warm_over_cold_{what}']:.2f} |")
    return "\n".join(lines[1:])


def commands_table(commands: dict) -> str:
    alone = "releases_alone" in commands["seconds"]
    lines = [f"| {commands['rounds']} rounds, median (min–max), interpreter included | through the fork server | "
             + ("in its own process (`GITPAAS_FORKSERVER=0`) | " if alone else "") + "target |",
             "|---|---:|" + ("---:|" if alone else "") + "---:|",
             f"| `python -c pass` (for reference) | {_cell(commands['seconds']['python'], digits=3)} | "
             + ("| " if alone else "") + "|"]
    for name, limit in COMMAND_LIMITS.items():
        own = f" {_cell(commands['seconds'][name + '_alone'], digits=3)} |" if alone else ""
        lines.append(f"| {COMMAND_LABELS[name]} | {_cell(commands['seconds'][name], digits=3)} |{own} < {limit:g} s |")
    return "\n".join(lines)


def many_apps_table(many: dict) -> str:
    first, last, n = many["first"], many["last"], many["apps"]
    lines = [f"| median (min–max) | 1 app | {n} apps | {n}/1 | target |", "|---|---:|---:|---:|---:|"]
    for key, label, target in (("redeploy_s", "redeploy: `git push` → the new body answers", f"≤ {MANY['redeploy']}"),
                               ("floor_s", "raw-Docker floor, alternated with each redeploy: `docker build` + "
                                "`docker run` + first 200 of the same app (the machine's drift)", "reported"),
                               ("switch_s", "router switch (`set_app` of new backends, as a deploy: the file, then "
                                "nginx's memory)", f"≤ {MANY['switch']}"),
                               ("reload_s", "router reload (`set_app` of new host names: the file, `nginx -t`, "
                                "reload, confirmed)", "reported"),
                               ("start_none_s", "the engine's start of a container (`true`, the stack image), on no "
                                "network", "reported"),
                               ("start_app_network_s", "the same start on the app's own network (as each web process "
                                "starts: a bridge endpoint and the engine's DNS resolver)", "reported"),
                               ("start_joined_s", "the same start joining the network namespace of a container "
                                "already running on the app's network (not what gitpaas does: see the design page)",
                                "reported"),
                               ("cli_apps_s", "`gitpaas apps`", f"< {MANY['listing_s']:g} s"),
                               ("api_apps_s", "`GET /apps` (`gitpaas server`)", f"< {MANY['listing_s']:g} s")):
        if key not in first or key not in last:
            continue  # a result from before that figure was measured
        digits = {"redeploy_s": 2, "switch_s": 4}.get(key, 3)
        lines.append(f"| {label} | {_cell(first[key], digits=digits)} | {_cell(last[key], digits=digits)} "
                     f"| {last[key]['median'] / first[key]['median']:.2f} | {target} |")
    per_app = many["per_app_kib"]
    lines.append(f"| router's nginx, PSS | {first['router_pss_kib'] / 1024:.1f} MiB | {last['router_pss_kib'] / 1024:.1f} MiB "
                 f"| {per_app['router_pss_kib']:.0f} KiB per app | reported |")
    lines.append(f"| `gitpaas server`, PSS | {first['server_pss_kib'] / 1024:.1f} MiB "
                 f"| {last['server_pss_kib'] / 1024:.1f} MiB | {per_app['server_pss_kib']:.0f} KiB per app | reported |")
    if "forkserver_pss_kib" in last:
        lines.append(f"| the fork server (`gitpaas.forkserver`), PSS | {first['forkserver_pss_kib'] / 1024:.1f} MiB "
                     f"| {last['forkserver_pss_kib'] / 1024:.1f} MiB | {per_app['forkserver_pss_kib']:.0f} KiB per app "
                     "| reported |")
    lines.append(f"| the apps' containers (the apps themselves) | {first['containers_mib']:.0f} MiB "
                 f"| {last['containers_mib']:.0f} MiB | {many['containers_mib_per_app']:.1f} MiB per app | |")
    if "engine_helpers" in last:
        before, after = first["engine_helpers"], last["engine_helpers"]
        for count, kib, label in (("proxies", "proxy_kib", "Docker's `docker-proxy`, one per web process's published port"),
                                  ("shims", "shim_kib", "Docker's `containerd-shim-runc-v2`, one per container")):
            if not after[count]:
                continue  # (none: web processes reached at their own addresses, or an engine without its userland proxy)
            grown = (after[kib] - before[kib]) / max(1, after[count] - before[count])
            lines.append(f"| {label}, PSS | {before[kib] / 1024:.1f} MiB ({before[count]}) "
                         f"| {after[kib] / 1024:.1f} MiB ({after[count]}) | {grown:.0f} KiB per extra one | reported |")
    for label, point in (("1 app", first), (f"{n} apps", last)):
        if point.get("redeploy_phases_s"):
            lines.append(f"| redeploy's phases at {label}: receive / build / release / health / swap | "
                         + " / ".join(f"{point['redeploy_phases_s'][k]:.2f}" for k in ("receive", "build", "release",
                                                                                     "health", "swap")) + " s | | | |")
    note = (f"The whole run took {many['fill_seconds']:.0f} s ({n} apps pushed {many['concurrency']} at a time, "
            "then measured)")
    if many.get("stopped_early"):
        note += f"; it was to reach {many['apps_wanted']} and stopped at its time limit"
    return "\n".join(lines) + f"\n\n{note}."


def _two(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}"


def zero_downtime_table(zero: dict) -> str:
    routed = "router_p99_ms" in zero["at_rest"]
    lines = ["| | requests | failed | p50 ms | p99 ms |" + (" p50 ms at the router | p99 ms at the router |" if routed else ""),
             "|---|---:|---:|---:|---:|" + ("---:|---:|" if routed else "")]
    during = f"during {zero['deploys']} deploys ({zero['seconds']} s)"
    rest_label = f"at rest ({zero['rest_seconds']} s)" if zero.get("rest_seconds") else "at rest"
    rows = [("at_rest", rest_label), ("during_deploys", during)]
    if zero.get("during_changes"):
        rows.append(("during_changes", f"during {', '.join(f'`{c}`' for c in zero['changes'])} "
                                       f"({zero['changes_seconds']} s)"))
    for key, label in rows:
        row = zero[key]
        lines.append(f"| {label} | {row['requests']:,} | {row['failed']} | {row['p50_ms']} | {row['p99_ms']} |"
                     + (f" {row['router_p50_ms']} | {row['router_p99_ms']} |" if routed else ""))
    lines.append(f"\np99 during deploys / at rest: {zero['p99_ratio']} ({zero['workers']} threads in one process, "
                 "on the same machine)" + (f"; at the router (nginx's `$request_time`, to the millisecond): "
                                          f"{zero['router_p99_ratio']}" if routed else "") + ".")
    rounds = zero.get("per_round") or []
    if rounds:
        lines.append(f"\nThe load never stops; over {len(rounds)} rounds a window of {zero['deploys_per_round']} deploys "
                     "(until the last one's old processes are retired) and a window at rest as long as the deploy "
                     "window before it alternate (deploys, rest | rest, deploys | …), each request counted in the "
                     "window it started in (its `X-Request-Id` names it, so the router's log is split the same way), "
                     "the p99s above pooled over the rounds. Each round alone:\n")
        lines.append("| round | deploys | at rest | p99 ms at rest | p99 ms during | ratio | at the router |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for number, row in enumerate(rounds):
            lines.append(f"| {number + 1} | {row['seconds']} s | {row['rest_seconds']} s | {row['at_rest']['p99_ms']} | "
                         f"{row['during_deploys']['p99_ms']} | {_two(row['p99_ratio'])} | {_two(row['router_p99_ratio'])} |")
    return "\n".join(lines)


def addons_table(addons: dict) -> str:
    labels = {"postgresql_cold": "PostgreSQL, cold (image built)", "postgresql_warm": "PostgreSQL, warm",
              "redis_cold": "Redis, cold (image built)", "redis_warm": "Redis, warm",
              "release": "a release migrating the database"}
    lines = [f"{addons['cold_runs']} cold and {addons['runs']} warm alternated runs; provisioning ends when the "
             "add-on accepts connections.", "",
             "| median (min–max) | gitpaas | by hand with docker | gitpaas/docker |", "|---|---:|---:|---:|"]
    for row, label in labels.items():
        if addons.get(f"{row}_gitpaas_s") and addons.get(f"{row}_docker_s"):
            lines.append(f"| {label} | {_cell(addons[f'{row}_gitpaas_s'], digits=1)} "
                         f"| {_cell(addons[f'{row}_docker_s'], digits=1)} | {addons[f'{row}_ratio']:.2f} |")
    return "\n".join(lines)


def swarm_scale_table(scale: dict) -> str:
    """1 app against N apps on one Swarm manager: medians (min–max), N/1, and the straight line
    through the two points per extra app."""
    one, many, apps = scale["one_app"], scale["n_apps"], scale["apps"]
    ratios, per_app = scale["ratios"], scale["per_extra_app"]

    def row(label: str, key: str, a: str, b: str) -> str:
        ratio = ratios.get(key)
        return (f"| {label} | {a} | {b} | {'' if ratio is None else f'{ratio:.2f}'} "
                f"| {per_app[key] * 1000:+.1f} ms |" if key.endswith("_s") else
                f"| {label} | {a} | {b} | {'' if ratio is None else f'{ratio:.2f}'} | {per_app[key]:+.2f} |")

    def seconds(point: dict, key: str) -> str:
        return _cell(point[key])

    early = f" ({scale['stopped_early']})" if scale.get("stopped_early") else ""
    lines = [f"{scale['nodes']} nodes, one manager; the first app runs {scale['web_of_first_app']} web processes, "
             f"the others one each. {scale['runs']} redeploys and config:sets, {scale['router_runs']} router "
             f"switches, {scale['cli_runs']} runs of each command at each point; median (min–max).{early}", "",
             f"| | 1 app | {apps} apps | {apps}/1 | per extra app |", "|---|---:|---:|---:|---:|"]
    for label, key, stats in (
            ("redeploy: `git push` → the new body answers", "redeploy_answer_s", "redeploy_answer_s"),
            ("redeploy: `git push` exits (every web process rolled)", "redeploy_push_s", "redeploy_push_s"),
            ("config:set → every web process serves the value", "config_set_every_s", "config_set_every_s"),
            ("router switch (`set_app`, until nginx serves it)", "router_switch_s", "router_switch_s"),
            ("`gitpaas apps`", "cli_apps_s", "cli_apps_s"),
            ("`gitpaas nodes`", "cli_nodes_s", "cli_nodes_s"),
            ("`gitpaas ps -a APP`", "cli_ps_s", "cli_ps_s")):
        lines.append(row(label, key, seconds(one, stats), seconds(many, stats)))
    for step in ("outside", "receive", "build", "publish", "release", "health", "swap"):
        a, b = one["redeploy_steps_s"][step], many["redeploy_steps_s"][step]
        lines.append(row(f"redeploy, {step}" + (" (slug → registry)" if step == "publish" else ""),
                         f"redeploy_{step}_s", f"{a:.2f} s", f"{b:.2f} s"))
    for label, key, part in (("manager dockerd RSS, MiB", "manager_dockerd_mib", "manager_dockerd"),
                             ("every node's dockerd + containerd RSS, MiB", "daemons_mib", "daemons"),
                             ("containerd shims RSS, MiB", "shims_mib", "shims")):
        lines.append(row(label, key, f"{one['memory_mib'][part]:.0f}", f"{many['memory_mib'][part]:.0f}"))
    for label, key, part in (("idle CPU, the nodes' containers (apps and their health checks), % of a core",
                              "idle_cpu_containers_pct", "containers"),
                             ("idle CPU, every node's dockerd + containerd + shims, % of a core",
                              "idle_cpu_daemons_pct", "daemons")):
        if key in per_app and one.get("idle_cpu_percent", {}).get(part) is not None:
            lines.append(row(label, key, f"{one['idle_cpu_percent'][part]:.0f}",
                             f"{many['idle_cpu_percent'][part]:.0f}"))
    tasks_one = ", ".join(str(count) for count in one["home_tasks_per_node"].values())
    tasks_many = ", ".join(str(count) for count in many["home_tasks_per_node"].values())
    lines.append(row("this home's running tasks (per node)", "tasks", f"{scale['figures_1']['tasks']:.0f} ({tasks_one})",
                     f"{scale['figures_n']['tasks']:.0f} ({tasks_many})"))
    lines.append(row("every running task on the swarm", "swarm_tasks", f"{scale['figures_1']['swarm_tasks']:.0f}",
                     f"{scale['figures_n']['swarm_tasks']:.0f}"))
    trend = scale["deploys"]
    lines += ["", f"Deploying apps 2 to {apps} (each `apps:create` and a first `git push`): push "
              f"{trend['first_s']:.1f} s for app 2, median {trend['median_s']:.1f} s, {trend['last_s']:.1f} s for "
              f"app {apps} ({trend['last_over_first']:.2f}× the first)"
              + (f"; least-squares slope {trend['slope_s_per_app'] * 1000:+.0f} ms per app already deployed"
                 if "slope_s_per_app" in trend else "") + "."]
    grew = scale["grew"]

    def at(values: dict, key: str, text: str) -> str:
        return text.format(values[key]) + ("" if grew[key] else " (flat)")

    for count, values in scale["straight_line"].items():
        lines.append(f"Straight line through the two points at {int(count):,} apps (an estimate, not measured; "
                     "\"flat\": no growth beyond the runs' spread, its value with "
                     f"{apps} apps): redeploy answers in {at(values, 'redeploy_answer_s', '{:.1f} s')}, its push exits in "
                     f"{at(values, 'redeploy_push_s', '{:.1f} s')}, config:set {at(values, 'config_set_every_s', '{:.1f} s')}, "
                     f"router switch {at(values, 'router_switch_s', '{:.2f} s')}, "
                     f"`gitpaas nodes` {at(values, 'cli_nodes_s', '{:.1f} s')}, "
                     f"manager dockerd {at(values, 'manager_dockerd_mib', '{:.0f} MiB')}, "
                     f"every node's dockerd + containerd {at(values, 'daemons_mib', '{:.0f} MiB')}.")
    lines.append(f"Sharing the rig: {one['other_services']} other service(s) on the swarm at 1 app, "
                 f"{many['other_services']} at {apps} apps; load average {one['load_average_1min']} and "
                 f"{many['load_average_1min']} ({scale['machine']['cpus']} cores)."
                 + (" gitpaas's code changed on disk during the run." if scale.get("gitpaas_source_changed_during_run")
                    else ""))
    return "\n".join(lines)


def markdown(results: dict, about: dict, checks: list[dict], chart: bool) -> str:
    parts = ["# Benchmark results", "",
             "Written by `make bench` (`bench/run_all.py`); the JSON beside this file has every sample.", "",
             "Measured on: " + describe_machine(about) + ".", ""]
    if checks:
        parts += ["| target | measured | |", "|---|---|---|"]
        parts += [f"| {c['target']} | {c['figure']} | {'met' if c['met'] else '**missed**'} |" for c in checks]
        parts.append("")
    sections = (("deploy_speed", "Deploy speed (`bench/deploy_speed.py`)", deploy_speed_tables),
                ("history", "History at scale (`bench/history.py`)", history_table),
                ("buildpack_cache", "Build cache (`bench/buildpack_cache.py`)", buildpack_table),
                ("zero_downtime", "Zero-downtime under load (`bench/zero_downtime.py`)", zero_downtime_table),
                ("addons", "Add-ons (`bench/addons.py`)", addons_table),
                ("many_apps", "Two hundred apps on one box (`bench/many_apps.py`)", many_apps_table),
                ("swarm_scale", "One Swarm manager, 1 app and N apps (`bench/swarm_scale.py`)", swarm_scale_table))
    for name, title, render in sections:
        if results.get(name):
            measured = results[name].get("machine", {}).get("measured_at", "")
            parts += [f"## {title}", "", f"Measured {measured}.", "", render(results[name]), ""]
            if name == "deploy_speed" and chart:
                parts += ["![where deploy time goes](deploy_phases.png)", ""]
    return "\n".join(parts)


def describe_machine(about: dict) -> str:
    return (f"{about['cores']} cores ({about['cpu']}), {about['memory_gib']} GiB, Linux {about['kernel']}, "
            f"Docker {about['docker']} ({about['docker_storage']}), Python {about['python']}, {about['date']}; "
            "shared with other work, so the seconds are noisy: compare the ratios")


# --- the chart -------------------------------------------------------------------------------

def phase_chart(speed: dict, path: Path = CHART) -> Path:
    """Horizontal stacked bars: the median of each phase of a redeploy and a rollback (default
    startup window and minimal), beside the raw-Docker floors."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, phases, window = speed["seconds"], speed["phases_s"], speed["startup_window_row"]
    floor_redeploy = {"floor_build": seconds["floor_build"]["median"],
                      "floor_run": seconds["floor_run_after_build"]["median"]}
    # (label, segments, measured median, floor median, target ratio)
    variants = {home: suffixes[2].format(window=window) for home, suffixes in HOMES.items() if home != "default"}
    bars = []
    for operation, title, floor_label, floor_parts in (
            ("redeploy", "gitpaas redeploy\n(git push → new version answers)",
             "raw Docker floor\n(docker build + run + first 200)", floor_redeploy),
            ("rollback", "gitpaas rollback\n(→ target version answers)", "raw Docker floor\n(docker run + first 200)",
             {"floor_run": seconds["floor_rollback"]["median"]})):
        floor = seconds[f"floor_{operation}"]["median"]
        bars.append((title, phases.get(f"{operation}_default"), seconds[f"{operation}_default"]["median"], floor,
                     LIMITS[operation]))
        for home, suffix in variants.items():
            if f"{operation}_{home}" in phases:
                bars.append((f"gitpaas {operation}{suffix}", phases[f"{operation}_{home}"],
                             seconds[f"{operation}_{home}"]["median"], floor, LIMITS[operation]))
        bars.append((floor_label, floor_parts, floor, None, None))

    figure, axes = plt.subplots(figsize=(11, 0.75 * len(bars) + 2.2), dpi=110)
    used = set()
    for row, (label, parts, measured, floor, target) in enumerate(bars):
        left = 0.0
        for key, name, colour in SEGMENTS:
            width = (parts or {}).get(key, 0.0)
            if width <= 0:
                continue
            axes.barh(row, width, left=left, color=colour, edgecolor="white", height=0.6,
                      label=name if key not in used else None)
            if width >= 0.25:
                axes.text(left + width / 2, row, f"{width:.1f}", ha="center", va="center", fontsize=8)
            used.add(key)
            left += width
        if floor and target:
            axes.plot([floor * target] * 2, [row - 0.38, row + 0.38], color="black", linestyle="--", linewidth=1.2,
                      label=f"target ({LIMITS['redeploy']}× / {LIMITS['rollback']}× the floor)" if "target" not in used else None)
            used.add("target")
        note = f"{measured:.2f} s" + (f"  ({measured / floor:.2f}× floor)" if floor else "")
        axes.text(left + 0.05, row, note, va="center", fontsize=9)
    axes.set_yticks(range(len(bars)), [bar[0] for bar in bars], fontsize=9)
    axes.invert_yaxis()
    longest = max(sum((bar[1] or {}).values()) for bar in bars)
    axes.set_xlim(0, longest * 1.3 + 0.5)
    axes.set_xlabel("seconds (segments: median of each phase over the runs; label: median end to end)")
    axes.set_title(f"Where deploy time goes — {speed['runs']} alternated runs, "
                   f"{speed['machine']['cpus']} cores, {speed['machine']['measured_at'][:10]}", fontsize=11)
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02 - 1.6 / (0.75 * len(bars) + 2.2)), ncol=3,
                fontsize=8, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def write_all(extra: dict | None = None) -> dict:
    """summary.json, README.md and the chart from whatever results are there."""
    results = {name: load(name) for name in NAMES}
    about = machine()
    checks = targets(results)
    chart = bool(results.get("deploy_speed")) and importlib.util.find_spec("matplotlib") is not None
    if chart:
        phase_chart(results["deploy_speed"])
    elif results.get("deploy_speed"):  # (run on its own, without `make bench`'s `.[bench]`): the tables still
        print(f"no chart: matplotlib is not installed (`make bench` installs it: pip install -e '.[bench]'); "
              f"{CHART.name} is not linked from the tables")
    summary = {"machine": about, "targets": checks, "chart": chart, **(extra or {}),
               "results": {name: {k: v for k, v in (data or {}).items() if not k.startswith(("samples", "timings"))}
                           for name, data in results.items() if data}}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "README.md").write_text(markdown(results, about, checks, chart))
    return summary


if __name__ == "__main__":
    written = write_all()
    for check in written["targets"]:
        print(f"{'met   ' if check['met'] else 'MISSED'}  {check['target']}: {check['figure']}")
    print(f"written to {(RESULTS / 'README.md').relative_to(ROOT)}, summary.json"
          + (f" and {CHART.name}" if written["chart"] else ""))
