"""The reverse proxy in front of the apps: one nginx per gitpaas home (see ``nginx``).

    render      nginx.conf and the apps' files from the jinja2 templates (pure)
    processes   what /proc says about nginx's master and workers
    tls         the operator's certificate and key, as files nginx reads
    nginx       NginxRouter: start, reload (confirmed), new backends without a reload, stop — the
                only part that runs nginx
    templates/  the jinja2 templates, the pages, and gitpaas_balancer.lua (nginx's Lua module
                balances each app with it, copied into the home's router/lua/)

The package itself imports none of them: a command that never touches the router (``gitpaas
releases``) does not load nginx's templates.
"""
