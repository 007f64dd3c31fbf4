"""The multiplan web application: `create_app()` builds it; one blueprint per area.

The app exposes the engine (plan store, conflict engine, site checks, approvals); it does not
reimplement it. No state at import time: the store, the settings and the caches live on the app.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from multiplan import config

#: Blueprints, by module name under web/ (each module defines ``bp``).
BLUEPRINTS = ("auth", "viewer", "plans", "conflicts", "sitecheck", "approvals", "stats", "admin", "api", "ogc",
              "tiles")
#: Blueprints for system and GIS clients: no CSRF tokens (they are not browser forms).
MACHINE_BLUEPRINTS = ("api", "ogc", "tiles")


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """The Flask app for the store in ``settings["STORE"]`` (default: the multiplan setting)."""
    import importlib

    from flask_wtf.csrf import CSRFProtect

    from multiplan.store import open_store
    from web import access, errors, i18n

    app = Flask(__name__)
    app.config.update(
        STORE=config.setting("store"),
        DEM=config.setting("dem") or None,
        SECRET_KEY=os.environ.get("MULTIPLAN_SECRET_KEY") or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=int(os.environ.get("MULTIPLAN_UPLOAD_LIMIT_MB", "200")) * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        UPLOAD_DIR=None,
        TILE_CACHE_SIZE=4096,
    )
    app.config.update(settings or {})
    if app.config["UPLOAD_DIR"] is None:
        app.config["UPLOAD_DIR"] = str(Path(app.instance_path) / "uploads")
    store = open_store(app.config["STORE"])
    store.init()
    app.extensions["multiplan_store"] = store
    _hold_one_connection_per_request(app, store)
    from multiplan.reports import CLASS_COLOURS

    app.jinja_env.globals["class_colours"] = CLASS_COLOURS  # small maps colour the plans as the viewer does
    csrf = CSRFProtect(app)
    i18n.init_app(app)
    access.init_app(app)
    errors.init_app(app)
    for name in BLUEPRINTS:
        module = importlib.import_module(f"web.{name}")
        app.register_blueprint(module.bp)
        if name in MACHINE_BLUEPRINTS:  # token or Basic auth there; a cookie alone cannot write (web.access)
            csrf.exempt(module.bp)
    return app


def _hold_one_connection_per_request(app: Flask, store: Any) -> None:
    """Every store call of a request shares one connection (PostGIS: one checkout instead of one per call).
    Registered before the other hooks, so the authorisation check uses it too."""
    from flask import g

    @app.before_request
    def _hold() -> None:
        held = store.one_connection()
        held.__enter__()
        g.multiplan_held_connection = held

    @app.teardown_request
    def _release(exc: BaseException | None) -> None:
        held = g.pop("multiplan_held_connection", None)
        if held is not None:
            held.__exit__(None, None, None)

