"""(being written)"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from web.access import ANY_USER, requires

bp = Blueprint("stats", __name__, url_prefix="/stats")


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    return "stats"
