"""Users of the web application and the API: roles, salted scrypt password hashes, API tokens.

Roles: ``viewer`` reads; ``planner`` loads plans and works the conflict ledger; ``officer`` checks sites
and decides approvals; ``admin`` does everything and manages users. Tokens are random and stored only as
their sha256, so a copied database does not give away working tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from multiplan.errors import MultiplanError, NotFoundError
from multiplan.store.base import PlanStore, now_utc

ROLES = ("viewer", "planner", "officer", "admin")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_USERNAME = re.compile(r"^[\w.\-@]{2,64}$")
MIN_PASSWORD = 8


class UserError(MultiplanError, ValueError):
    """A user or token operation that is not allowed."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r),
                               p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "password_hash"} | {"active": bool(row["active"])}


def add_user(store: PlanStore, username: str, password: str, role: str, display_name: str | None = None,
             actor: str = "cli") -> dict[str, Any]:
    """Create a user; refuse a taken name, an unknown role or a short password."""
    if not _USERNAME.match(username or ""):
        raise UserError("user_bad_name", name=username)
    if role not in ROLES:
        raise UserError("user_bad_role", role=role, roles=", ".join(ROLES))
    if len(password or "") < MIN_PASSWORD:
        raise UserError("user_short_password", minimum=MIN_PASSWORD)
    with store._records() as tx:
        if tx.select("mp_users", {"username": username}, lock=True):
            raise UserError("user_exists", name=username)
        now = now_utc()
        tx.insert("mp_users", {"username": username, "display_name": display_name or username,
                               "password_hash": hash_password(password), "role": role, "active": 1,
                               "created_at": now, "updated_at": now})
    store.audit("user_add", actor, {"username": username, "role": role})
    return get_user(store, username)


def get_user(store: PlanStore, username: str) -> dict[str, Any]:
    found = store.select_records("mp_users", {"username": username})
    if not found:
        raise NotFoundError("user_not_found", name=username)
    return _public(found[0])


def list_users(store: PlanStore) -> list[dict[str, Any]]:
    return sorted((_public(r) for r in store.select_records("mp_users")), key=lambda u: u["username"])


def update_user(store: PlanStore, username: str, actor: str, role: str | None = None, active: bool | None = None,
                password: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": now_utc()}
    if role is not None:
        if role not in ROLES:
            raise UserError("user_bad_role", role=role, roles=", ".join(ROLES))
        values["role"] = role
    if active is not None:
        values["active"] = int(active)
    if password is not None:
        if len(password) < MIN_PASSWORD:
            raise UserError("user_short_password", minimum=MIN_PASSWORD)
        values["password_hash"] = hash_password(password)
    with store._records() as tx:
        if not tx.select("mp_users", {"username": username}, lock=True):
            raise NotFoundError("user_not_found", name=username)
        tx.update("mp_users", username, values)
    store.audit("user_update", actor, {"username": username, **{k: v for k, v in values.items()
                                                               if k not in ("password_hash", "updated_at")},
                                       "password_changed": password is not None})
    return get_user(store, username)


def authenticate(store: PlanStore, username: str, password: str) -> dict[str, Any] | None:
    """The user when the name and password match an active account, else None."""
    found = store.select_records("mp_users", {"username": username or ""})
    if not found or not found[0]["active"] or not check_password(password or "", found[0]["password_hash"]):
        return None
    return _public(found[0])


def issue_token(store: PlanStore, username: str, label: str, actor: str) -> str:
    """A new API token for ``username``; only its hash is stored, so this is the one time it is shown."""
    get_user(store, username)
    token = "mpt_" + secrets.token_urlsafe(32)
    with store._records() as tx:
        tx.insert("mp_api_tokens", {"token_sha256": hashlib.sha256(token.encode()).hexdigest(), "username": username,
                                    "label": label, "created_at": now_utc(), "revoked_at": None})
    store.audit("token_issue", actor, {"username": username, "label": label})
    return token


def token_user(store: PlanStore, token: str) -> dict[str, Any] | None:
    """The active user a live token belongs to, else None."""
    if not token:
        return None
    found = store.select_records("mp_api_tokens", {"token_sha256": hashlib.sha256(token.encode()).hexdigest()})
    if not found or found[0]["revoked_at"]:
        return None
    user = store.select_records("mp_users", {"username": found[0]["username"]})
    return _public(user[0]) if user and user[0]["active"] else None


def revoke_tokens(store: PlanStore, username: str, actor: str) -> int:
    with store._records() as tx:
        live = [t for t in tx.select("mp_api_tokens", {"username": username}) if not t["revoked_at"]]
        for t in live:
            tx.update("mp_api_tokens", t["id"], {"revoked_at": now_utc()})
    store.audit("token_revoke", actor, {"username": username, "count": len(live)})
    return len(live)
