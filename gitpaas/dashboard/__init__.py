"""The web dashboard ``gitpaas server`` serves under ``/dashboard/``: what a deploy did, for teams and
for teaching. ``pages`` is the thin HTTP shell (session, CSRF, forms, live streams); ``views``
arranges what the same operations as the CLI and the API return; ``templates/`` and ``static/``
are the HTML, the stylesheet and the little JavaScript the live parts need."""
