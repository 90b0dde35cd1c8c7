"""What a pushed ref does: main or master deploys the app (``gitpaas.pipeline``); another branch
deploys, or with its deletion destroys, its review app (``gitpaas.reviewapps``) — or is refused,
saying how to enable review apps. The git hook calls this for each ref a push updates."""

from __future__ import annotations

from typing import Mapping

from gitpaas import reviewapps
from gitpaas.errors import PushRefused
from gitpaas.git.repo import DEPLOY_BRANCHES
from gitpaas.identity import Actor
from gitpaas.output import Output
from gitpaas.pipeline import deploy_push
from gitpaas.platform import Platform
from gitpaas.release import Release


def check_updates(refs: list[str]) -> None:
    """One branch per push: each ref deploys (or destroys) on its own, and git accepts or refuses a
    push as a whole, so a push of several could leave one live and its ref unmoved."""
    if len(refs) > 1:
        names = ", ".join(ref.removeprefix("refs/heads/") for ref in refs)
        raise PushRefused(f"gitpaas deploys one branch per push, and this one updates {names}: push them one at a "
                          "time (`git push REMOTE BRANCH`)")


def receive_ref(platform: Platform, app_name: str, old: str, new: str, ref: str, output: Output, actor: Actor,
                environ: Mapping[str, str] | None = None) -> Release | None:
    """Deploy one pushed ref; raises (and so rejects the push) unless what it deploys went live."""
    if ref in DEPLOY_BRANCHES:
        return deploy_push(platform, app_name, old, new, ref, output, actor, environ)
    return reviewapps.on_branch_push(platform, app_name, old, new, ref, output, actor, environ)
