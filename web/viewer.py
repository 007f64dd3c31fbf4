"""The one-map viewer (being written)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template_string

from web.access import ANY_USER, requires

bp = Blueprint("viewer", __name__)


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    return render_template_string("{% extends 'base.html' %}{% block content %}map{% endblock %}")
