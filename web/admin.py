"""User administration (admins only): accounts, roles, disabling, API tokens for system clients."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from multiplan import users
from web.access import forget_credentials, requires
from web.i18n import t
from web.store import get_store

bp = Blueprint("admin", __name__, url_prefix="/admin")
STRINGS = {
    "users_title": ("用户管理", "Users"), "add_user": ("新增用户", "Add a user"), "display_name": ("姓名", "Name"),
    "active": ("启用", "active"), "disabled": ("停用", "disabled"), "save": ("保存", "Save"),
    "issue_token": ("签发接口令牌", "Issue an API token"), "token_label": ("用途(如 审批系统)", "Purpose (e.g. approval system)"),
    "token_once": ("令牌只显示这一次,请妥善保存:", "The token is shown this once; keep it safe:"),
    "revoke_tokens": ("吊销全部令牌", "Revoke all tokens"), "user_saved": ("已保存", "Saved"),
    "revoked": ("已吊销 {n} 个令牌", "{n} tokens revoked"),
}


@bp.route("/")
@requires("admin")
def index() -> Any:
    return render_template("admin.html", users=users.list_users(get_store()), roles=users.ROLES)


@bp.route("/users", methods=["POST"])
@requires("admin")
def add() -> Any:
    users.add_user(get_store(), request.form.get("username", "").strip(), request.form.get("password", ""),
                   request.form.get("role", ""), (request.form.get("display_name") or "").strip() or None,
                   actor=g.user["username"])
    flash(t("user_saved"))
    return redirect(url_for("admin.index"))


@bp.route("/users/<username>", methods=["POST"])
@requires("admin")
def update(username: str) -> Any:
    users.update_user(get_store(), username, g.user["username"], role=request.form.get("role") or None,
                      active=request.form.get("active") == "1", password=request.form.get("password") or None)
    forget_credentials()
    flash(t("user_saved"))
    return redirect(url_for("admin.index"))


@bp.route("/users/<username>/token", methods=["POST"])
@requires("admin")
def token(username: str) -> Any:
    issued = users.issue_token(get_store(), username, request.form.get("label", "").strip() or "api",
                               g.user["username"])
    return render_template("admin.html", users=users.list_users(get_store()), roles=users.ROLES, token=issued,
                           token_user=username)


@bp.route("/users/<username>/revoke", methods=["POST"])
@requires("admin")
def revoke(username: str) -> Any:
    n = users.revoke_tokens(get_store(), username, g.user["username"])
    forget_credentials()
    flash(t("revoked", n=n))
    return redirect(url_for("admin.index"))
