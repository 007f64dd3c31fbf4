"""Errors come back as friendly pages, or as JSON with their status for the machine interfaces; never as
tracebacks. Input errors from the engine (a bad file, a refused transition) are 400/404/409 with the
engine's message in the page's language."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template
from werkzeug.exceptions import HTTPException

from multiplan.errors import InputError, MultiplanError, NotFoundError


def _answer(status: int, message: str, key: str) -> Any:
    from web.access import wants_json

    if wants_json():
        response = jsonify({"error": key, "message": message, "status": status})
        response.status_code = status
        return response
    return render_template("error.html", status=status, message=message), status


def status_of(exc: MultiplanError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InputError):
        return 400
    return 409 if isinstance(exc, ValueError) else 500


def init_app(app: Flask) -> None:
    from web.i18n import language, t

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        key = f"error_{exc.code}"
        message = t(key) if key in app.extensions["multiplan_strings"] else (exc.description or exc.name)
        return _answer(exc.code or 500, message, exc.name.lower().replace(" ", "_"))

    @app.errorhandler(MultiplanError)
    def _engine(exc: MultiplanError) -> Any:
        return _answer(status_of(exc), exc.render(language()), exc.key)

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        return _answer(500, t("error_500"), "internal_error")
