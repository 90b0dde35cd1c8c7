"""The reverse proxy in front of the apps: one nginx per gitpaas home (see ``nginx``).

    render      nginx.conf and the apps' files from the jinja2 templates (pure)
    processes   what /proc says about nginx's master and workers
    tls         the operator's certificate and key, as files nginx reads
    nginx       NginxRouter: start, reload (confirmed), stop — the only part that runs nginx
"""

from __future__ import annotations

from gitpaas.router.nginx import NginxRouter
from gitpaas.router.render import render_app_config, render_main_config

__all__ = ["NginxRouter", "render_app_config", "render_main_config"]
