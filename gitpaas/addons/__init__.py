"""Add-ons: a real PostgreSQL or Redis beside an app, each its own container on the app's network,
its data on a named volume, with Heroku's release semantics.

    plans.py       pure: the services, the names Heroku gives things (DATABASE_URL, HEROKU_POSTGRESQL_…)
    store.py       the records (``apps/NAME/addons/ADDON.json``, 0600: they hold credentials) and the
                   backups kept in the home (``backups/APP/ADDON/``), which outlive the app
    lifecycle.py   create, destroy, rotate credentials, each as a release; make sure they accept
                   connections before anything of the app starts
    backups.py     pg:backups capture, restore, download, schedule

The containers themselves are the scheduler's (``Scheduler.start_addon`` and friends), like every
process: docker-local runs them; the images are built from Debian's packages (``build.addon_images``).
"""
