"""`multiplan users` and `multiplan serve`: the web application's accounts and its server."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click

from multiplan import config, users
from multiplan.cli import cli
from multiplan.cli.plans import _t
from multiplan.store import open_store


@cli.group("users")
def users_group() -> None:
    """Accounts of the web application and the API: add, list, set role or password, issue tokens."""


@users_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(users.ROLES), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (asked for when not given).")
@click.option("--name", "display_name", help="Display name (e.g. 王海涛).")
@click.pass_obj
def users_add(obj: dict[str, Any], username: str, role: str, password: str, display_name: str | None) -> None:
    """Create a user (the first admin, then everyone else)."""
    with open_store(obj["store"]) as store:
        store.init()
        user = users.add_user(store, username, password, role, display_name)
    click.echo(_t(f"已创建用户 {user['username']}({user['role']})", f"user {user['username']} created ({user['role']})"))


@users_group.command("list")
@click.pass_obj
def users_list(obj: dict[str, Any]) -> None:
    with open_store(obj["store"]) as store:
        for u in users.list_users(store):
            click.echo(f"{u['username']:<20} {u['role']:<8} {'active' if u['active'] else 'disabled':<9} "
                       f"{u['display_name'] or ''}")


@users_group.command("set")
@click.argument("username")
@click.option("--role", type=click.Choice(users.ROLES))
@click.option("--active/--disabled", default=None)
@click.option("--password", help="A new password.")
@click.pass_obj
def users_set(obj: dict[str, Any], username: str, role: str | None, active: bool | None, password: str | None) -> None:
    """Change a user's role, password or whether the account is active."""
    with open_store(obj["store"]) as store:
        user = users.update_user(store, username, "cli", role=role, active=active, password=password)
    click.echo(f"{user['username']}: {user['role']}, {'active' if user['active'] else 'disabled'}")


@users_group.command("token")
@click.argument("username")
@click.option("--label", required=True, help="What the token is for (e.g. 审批系统).")
@click.pass_obj
def users_token(obj: dict[str, Any], username: str, label: str) -> None:
    """Issue an API token for a system client; it is shown once."""
    with open_store(obj["store"]) as store:
        token = users.issue_token(store, username, label, "cli")
    click.echo(token)


DEFAULT_WORKERS = 2 * (os.cpu_count() or 1)
DEFAULT_THREADS = 2


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=int,
              help="gunicorn worker processes (default: two per CPU).")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True, type=int, help="Threads per worker.")
@click.option("--debug", is_flag=True, help="Flask's debug server instead of gunicorn (development only).")
@click.pass_obj
def serve_command(obj: dict[str, Any], host: str, port: int, workers: int, threads: int, debug: bool) -> None:
    """Serve the web application (gunicorn; --debug for Flask's development server)."""
    serve(obj["store"] or config.setting("store"), host, port, workers, threads, debug)


def serve(store: str, host: str, port: int, workers: int = DEFAULT_WORKERS, threads: int = DEFAULT_THREADS,
          debug: bool = False, dem: str | None = None) -> None:
    env = {**os.environ, "MULTIPLAN_STORE": store, **({"MULTIPLAN_DEM": dem} if dem else {})}
    if not env.get("MULTIPLAN_SECRET_KEY"):  # one key for every worker, so sessions survive across them
        env["MULTIPLAN_SECRET_KEY"] = os.urandom(32).hex()
    if debug:
        os.environ.update(env)
        from web import create_app

        create_app().run(host=host, port=port, debug=True)
        return
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed")
    # A site check is CPU-bound Python: processes rather than many threads, and a worker takes a connection
    # only when it has a thread free (no keep-alive), so requests wait in one queue, in order, instead of
    # behind whichever busy worker happened to hold their connection (this halved the p95 under load).
    argv = [gunicorn, "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-connections", str(threads), "--keep-alive", "0",
            "--timeout", "300", "--access-logfile", "-", "web:create_app()"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(gunicorn, argv, env)  # gunicorn takes this process's place: signals reach it, nothing is orphaned
