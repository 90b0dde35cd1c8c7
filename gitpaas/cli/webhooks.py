"""webhooks, webhooks:add, webhooks:remove, webhooks:deliveries, notify:email."""

from __future__ import annotations

import click

from gitpaas.cli.common import (
    app_option,
    backend,
    json_option,
    platform,
    print_json,
    print_table,
    when,
)
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError
from gitpaas.notify.store import DEFAULT_SMTP, Notifications


def _notifications(app: str) -> Notifications:
    plat = platform()
    plat.apps.get(app)
    return Notifications.for_app(plat.settings, app)


@cli.command("webhooks:add")
@click.argument("url")
@app_option
@click.option("--secret", metavar="SECRET", help="the HMAC key to sign with (default: a new random one)")
def webhooks_add(url: str, app: str, secret: str | None) -> None:
    """POST a signed event to URL whenever a release of APP succeeds or fails.

    URL's host must be public: loopback, link-local and private addresses need the operator's
    GITPAAS_WEBHOOK_PRIVATE_TARGETS=1.
    """
    hook_id, hook_secret = backend().add_webhook(app, url, secret)
    click.echo(f"Adding webhook to {app}... done")
    click.echo(f"Id:     {hook_id}")
    if secret is None:
        click.echo(f"Secret: {hook_secret}")
        click.echo("Keep the secret: it is shown only once. Verify the Heroku-Webhook-Hmac-SHA256 header with it.")


@cli.command("webhooks")
@app_option
@json_option
def webhooks_list(app: str, as_json: bool) -> None:
    """List an app's webhooks (their secrets are never shown)."""
    hooks = backend().webhooks(app)
    if as_json:
        print_json(hooks)
        return
    if not hooks:
        click.echo(f"{app} has no webhooks. Add one with `gitpaas webhooks:add URL -a {app}`.")
        return
    print_table(["id", "url", "created"], ((h["id"], h["url"], h["created_at"]) for h in hooks),
                title=f"=== {app} webhooks")


@cli.command("webhooks:remove")
@click.argument("id_or_url")
@app_option
def webhooks_remove(id_or_url: str, app: str) -> None:
    """Stop sending events to a webhook, named by its id or its URL."""
    hook = backend().remove_webhook(app, id_or_url)
    click.echo(f"Removing webhook {hook['id']} ({hook['url']}) from {app}... done")


@cli.command("webhooks:deliveries")
@app_option
@json_option
@click.option("-n", "--num", "limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="how many of the newest events (at most 1000)")
def webhooks_deliveries(app: str, as_json: bool, limit: int) -> None:
    """Recent release events and whether each webhook (and e-mail) got them."""
    records = backend().deliveries(app, limit)
    if as_json:
        print_json(records)
        return
    if not records:
        click.echo(f"{app} has no deliveries yet.")
        return
    rows = []
    for record in records:
        targets = [(t["url"], t) for t in record["webhooks"]]
        if record.get("email"):
            targets.append(("mailto:" + ",".join(record["email"]["to"]), record["email"]))
        for target, state in targets:
            last = state["attempts"][-1] if state["attempts"] else {}
            outcome = last.get("status_code") or last.get("error") or ("sent" if last.get("sent") else "")
            rows.append((record["id"][:8], f"v{record['release']} {record.get('release_status', '')}",
                         when(record["created_at"]), target,
                         state["status"], len(state["attempts"]), outcome))
    print_table(["event", "release", "when", "to", "status", "attempts", "last"], rows,
                title=f"=== {app} deliveries")


@cli.command("notify:email")
@click.argument("addresses", nargs=-1, metavar="[ADDRESS]...")
@app_option
@click.option("--smtp", metavar="smtp://HOST:PORT", default=None, help=f"the mail server (default {DEFAULT_SMTP})")
@click.option("--off", is_flag=True, help="stop e-mailing about failed releases")
def notify_email(addresses: tuple[str, ...], app: str, smtp: str | None, off: bool) -> None:
    """E-mail ADDRESS... when a release of APP fails; without arguments, show the setting."""
    notes = _notifications(app)
    if off:
        if addresses or smtp:
            raise UsageError("--off takes no addresses and no --smtp")
        done = notes.clear_email()
        click.echo(f"E-mail on failed releases of {app}: off" + ("" if done else " (it was not on)"))
        return
    if addresses:
        settings = notes.set_email(list(addresses), smtp or DEFAULT_SMTP,
                                   private_targets=platform().settings.webhook_private_targets)
    elif smtp:
        raise UsageError("--smtp needs at least one ADDRESS")
    else:
        settings = notes.email()
    if settings is None:
        click.echo(f"E-mail on failed releases of {app}: off. Turn it on with `gitpaas notify:email ADDRESS -a {app}`.")
        return
    click.echo(f"E-mail on failed releases of {app}: {', '.join(settings.to)} via {settings.smtp}")
