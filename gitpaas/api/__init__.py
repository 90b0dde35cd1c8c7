"""The gitpaas Platform API: Heroku's Platform API v3 shapes over HTTP (FastAPI on uvicorn), plus
git smart HTTP and the streams its objects link to. ``application.create_app(settings)`` builds
it; ``gitpaas server`` runs it. The routes (``routes``, ``streams``, ``git_http``) are thin: parse,
check access, call the same operations the CLI calls, answer in Heroku's shapes (``gitpaas.shapes``)."""
