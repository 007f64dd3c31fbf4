"""(being written)"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from web.access import ANY_USER, requires

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    return "admin"
