"""Languages of the web pages: Chinese by default, English by switch (``?lang=en``, kept in the session).

Each blueprint module may define ``STRINGS = {key: (zh, en)}``; they are merged with the common ones
below when the app is created. Templates call ``t(key)``; engine messages come from multiplan.i18n in
the same language.
"""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask, g, request, session

from multiplan import i18n as engine_i18n

COMMON: dict[str, tuple[str, str]] = {
    "app_name": ("多规合一平台", "Multi-plan integration"),
    "nav_map": ("一张图", "One map"), "nav_plans": ("规划成果", "Plans"), "nav_conflicts": ("冲突台账", "Conflicts"),
    "nav_sitecheck": ("用地核查", "Site check"), "nav_approvals": ("审批项目", "Approvals"),
    "nav_stats": ("统计分析", "Statistics"), "nav_admin": ("用户管理", "Users"), "nav_api": ("接口文档", "API"),
    "login": ("登录", "Log in"), "logout": ("退出", "Log out"), "username": ("用户名", "User name"),
    "password": ("密码", "Password"), "login_failed": ("用户名或密码错误。", "Wrong user name or password."),
    "role": ("角色", "Role"), "language": ("English", "中文"),
    "role_viewer": ("浏览", "viewer"), "role_planner": ("规划编制", "planner"), "role_officer": ("审批经办", "officer"),
    "role_admin": ("管理员", "admin"),
    "error_title": ("出错了", "Something went wrong"), "error_403": ("您没有权限执行此操作。", "You are not allowed to do this."),
    "error_401": ("需要登录,或提供接口令牌(Authorization: Bearer …)。", "Log in, or send an API token (Authorization: Bearer …)."),
    "error_404": ("找不到该页面或记录。", "No such page or record."),
    "error_413": ("上传的文件太大。", "The uploaded file is too large."),
    "error_400": ("请求无效(表单已过期?请刷新后重试)。", "Bad request (an expired form? reload and try again)."),
    "error_500": ("服务器内部错误,已记录。", "Internal error; it has been logged."),
    "back": ("返回", "Back"), "none": ("无", "none"), "submit": ("提交", "Submit"), "search": ("搜索", "Search"),
    "county": ("行政区", "County"), "all": ("全部", "all"), "download": ("下载", "Download"),
    "verdict_compliant": ("符合", "compliant"), "verdict_conditional": ("有条件符合", "conditional"),
    "verdict_prohibited": ("不符合(禁止)", "prohibited"), "verdict_unknown": ("无法判定,需人工核查", "unknown: needs review"),
    "severity_forbidden": ("禁止", "forbidden"), "severity_major": ("重大", "major"),
    "severity_conditional": ("有条件", "conditional"), "severity_notice": ("提示", "notice"),
}


def language() -> str:
    return getattr(g, "lang", None) or session.get("lang") or "zh"


def init_app(app: Flask) -> None:
    from web import BLUEPRINTS

    strings = dict(COMMON)
    for name in BLUEPRINTS:
        strings.update(getattr(importlib.import_module(f"web.{name}"), "STRINGS", {}))
    app.extensions["multiplan_strings"] = strings

    @app.before_request
    def _language() -> None:
        wanted = request.args.get("lang")
        if wanted in engine_i18n.LANGUAGES:
            session["lang"] = wanted
        g.lang = session.get("lang")
        if g.lang is None:  # system clients say what they read in Accept-Language; people default to Chinese
            machine = request.path.startswith(("/api/", "/ogc", "/tiles/"))
            g.lang = (request.accept_languages.best_match(["zh", "en"]) if machine else None) or "zh"
        engine_i18n.set_language(g.lang)

    @app.context_processor
    def _helpers() -> dict[str, Any]:
        return {"t": t, "lang": language()}


def t(key: str, **params: Any) -> str:
    from flask import current_app

    pair = current_app.extensions["multiplan_strings"].get(key)
    if pair is None:
        return key
    text = pair[1] if language() == "en" else pair[0]
    return text.format(**params) if params else text
