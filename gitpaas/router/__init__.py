"""The reverse proxy in front of the apps: one nginx per gitpaas home (see ``nginx``)."""

from __future__ import annotations

from gitpaas.router.nginx import NginxRouter, render_app_config, render_main_config

__all__ = ["NginxRouter", "render_app_config", "render_main_config"]
