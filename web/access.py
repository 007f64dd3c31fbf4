"""Who may do what: every view declares its roles with ``@requires``; one hook checks every request.

A view without a declaration is refused (fail closed). Browsers authenticate with the session cookie
(login form, CSRF on every form); system clients and GIS clients with ``Authorization: Bearer TOKEN``
or HTTP Basic. Requests that change something are written to the store's audit trail.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for

from multiplan import users

PUBLIC = "public"
ANY_USER = ("viewer", "planner", "officer", "admin")
#: Endpoint prefixes answered as JSON (and authenticated by token or Basic as well as the session).
MACHINE_PREFIXES = ("/api/", "/ogc", "/tiles/")


def requires(*roles: str) -> Callable:
    """Declare who may call a view: role names, ``ANY_USER`` members, or ``PUBLIC``."""
    def mark(view: Callable) -> Callable:
        view._roles = frozenset(roles)  # type: ignore[attr-defined]
        return view
    return mark


def wants_json() -> bool:
    return request.path.startswith(MACHINE_PREFIXES) or request.accept_mimetypes.best == "application/json"


#: How long (s) a checked token or Basic credential is trusted without asking the store again. Tile and
#: API clients send one with every request, and a password hash costs tens of milliseconds by design.
#: Changes made through this process's admin pages take effect at once; other workers follow within this.
CREDENTIALS_TTL_S = 30.0


def _remembered(header: str, check: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    cache = current_app.extensions.setdefault("multiplan_credentials", {})
    key = hashlib.sha256(header.encode("utf-8")).hexdigest()
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    user = check()
    if user is not None:  # failures are not remembered: a typo must not lock anyone out
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = (time.monotonic() + CREDENTIALS_TTL_S, user)
    return user


def forget_credentials() -> None:
    """Drop remembered tokens and Basic credentials (after a user or token changed)."""
    current_app.extensions.get("multiplan_credentials", {}).clear()


def _credentials_user() -> tuple[dict[str, Any] | None, str | None]:
    from web.store import get_store

    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return _remembered(header, lambda: users.token_user(get_store(), header[7:].strip())), "token"
    if header.startswith("Basic "):
        try:
            name, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, "basic"
        return _remembered(header, lambda: users.authenticate(get_store(), name, password)), "basic"
    if session.get("user"):
        try:
            user = users.get_user(get_store(), session["user"])
        except LookupError:
            return None, None
        return (user if user["active"] else None), "session"
    return None, None


def allowed(user: dict[str, Any] | None, roles: frozenset[str]) -> bool:
    if PUBLIC in roles:
        return True
    return user is not None and (user["role"] == "admin" or user["role"] in roles)


def _check() -> Any:
    if request.endpoint is None or request.endpoint == "static":
        return None
    view = current_app.view_functions.get(request.endpoint)
    roles = getattr(view, "_roles", None)
    if roles is None:
        abort(403)
    user, method = _credentials_user()
    g.user, g.auth_method = user, method
    if PUBLIC in roles:
        return None
    if user is None:
        if wants_json():
            from web.i18n import t

            response = jsonify({"error": "unauthorised", "message": t("error_401"), "status": 401})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer realm="multiplan", Basic realm="multiplan"'
            return response
        return redirect(url_for("auth.login", next=request.full_path))
    # a cookie alone must not change data through the machine interfaces (they have no CSRF token)
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.path.startswith(MACHINE_PREFIXES) \
            and method == "session":
        abort(403)
    if not allowed(user, roles):
        abort(403)
    return None


def _audit(response: Any) -> Any:
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.endpoint not in (None, "static"):
        from web.store import get_store

        user = getattr(g, "user", None)
        actor = user["username"] if user else (request.form.get("username") or "anonymous")
        try:
            get_store().audit(f"web:{request.endpoint}", actor, {"method": request.method, "path": request.path,
                                                                 "status": response.status_code})
        except Exception:  # the audit must never turn a served answer into an error page
            current_app.logger.exception("audit failed")
    return response


def _security_headers(response: Any) -> Any:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def init_app(app: Flask) -> None:
    app.before_request(_check)
    app.after_request(_audit)
    app.after_request(_security_headers)

    @app.context_processor
    def _user() -> dict[str, Any]:
        user = getattr(g, "user", None)
        return {"current_user": user, "can": lambda *roles: allowed(user, frozenset(roles))}
