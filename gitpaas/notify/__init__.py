"""Telling the world about releases: signed webhooks (Heroku's app-webhook shape) and e-mail.

An app's settings are plain files in its folder, written 0600 because they hold secrets::

    apps/NAME/webhooks.json          [{id, url, secret, created_at}]
    apps/NAME/notify-email.json      {to: [addresses], smtp: "smtp://host:port"}
    apps/NAME/deliveries/ID.json     one event, and every attempt to deliver it (``cat`` it)

``announce_release`` is what the pipeline calls when a release succeeds or fails. It only writes
the delivery file and starts a detached deliverer (``python -m gitpaas.notify deliver FILE``),
which retries with exponential backoff; a failing receiver can neither fail nor slow a deploy.

- ``store``     the settings and delivery files above (``Notifications``) and their validators;
- ``event``     pure: the event, its per-attempt payload, its signature, the failure e-mail;
- ``announce``  in the deploy: write the delivery file, start the deliverer, never raise;
- ``deliver``   in the detached process: POST, send, retry, record every attempt.
"""
