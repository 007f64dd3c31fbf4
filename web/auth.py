"""Log in and out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from multiplan import users
from web.access import ANY_USER, PUBLIC, requires
from web.store import get_store

bp = Blueprint("auth", __name__)
STRINGS = {"welcome": ("欢迎,{name}", "Welcome, {name}")}


def _safe_next(target: str | None) -> str:
    # only paths on this site: never an absolute URL someone slipped into the link
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("viewer.index")


@bp.route("/login", methods=["GET", "POST"])
@requires(PUBLIC)
def login() -> Any:
    from web.i18n import t

    if request.method == "POST":
        user = users.authenticate(get_store(), request.form.get("username", ""), request.form.get("password", ""))
        if user:
            session.clear()
            session["user"] = user["username"]
            session["lang"] = request.form.get("lang") or "zh"
            return redirect(_safe_next(request.args.get("next")))
        flash(t("login_failed"), "error")
        return render_template("login.html")
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
@requires(*ANY_USER)
def logout() -> Any:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))
