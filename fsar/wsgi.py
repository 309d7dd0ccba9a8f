"""The WSGI application, for gunicorn (gunicorn.conf.py, docs/deployment.md).

`warm()` does at import what each worker's first requests would otherwise do: import
every view through the URL resolver and compile the project's templates into the
cached loader. gunicorn imports this module once, in the master (`preload_app`), so
every worker, and every worker that replaces one after `max_requests`, starts as a
fork that has all of it: a replacement costs a fork, not an import of the project
on a machine that is serving (the soak in docs/benchmarks.md measured five
replacements within 12 s stalling every request for up to half a second).
"""

import logging
import os
from pathlib import Path

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fsar.settings")
application = get_wsgi_application()


def warm() -> int:
    """Import every view and compile the project's templates; returns how many templates.
    Opens no database connection (a connection made before the fork would be shared by
    every worker): it closes any that something opened."""
    from django.conf import settings
    from django.db import connections
    from django.template import engines
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  the URLconf, and with it every view module and API router
    root = Path(settings.BASE_DIR)
    compiled = 0
    for engine in engines.all():
        for folder in engine.template_dirs:
            folder = Path(folder)
            if not folder.is_dir() or root not in folder.parents or ".venv" in folder.parts:
                continue  # the project's own templates only; Django's and the admin's compile when used
            for path in sorted(folder.rglob("*.html")):
                engine.get_template(path.relative_to(folder).as_posix())
                compiled += 1
    connections.close_all()
    logger = logging.getLogger("fsar.wsgi")
    logger.info("imported every view, compiled %d templates (process %d)", compiled, os.getpid())
    return compiled


warm()
