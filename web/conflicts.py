"""(being written)"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from web.access import ANY_USER, requires

bp = Blueprint("conflicts", __name__, url_prefix="/conflicts")


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    return "conflicts"
