"""The `multiplan` command: thin click adapters over the engine, one module per area."""

from __future__ import annotations

import atexit
import gc
import os
import sys

import click

from multiplan import i18n
from multiplan.errors import MultiplanError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MultiplanError as exc:
            click.echo(("错误: " if i18n.language() == "zh" else "Error: ") + str(exc), err=True)
            ctx.exit(2 if exc.key in ("spec_unknown_layer",) else 1)
        except KeyboardInterrupt:
            click.echo("\n已中断,存储未改变。" if i18n.language() == "zh" else "\nInterrupted; the store is unchanged.", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so plainly, keep the traceback for MULTIPLAN_DEBUG
            if os.environ.get("MULTIPLAN_DEBUG"):
                raise
            click.echo(("内部错误(请报告此问题,设置 MULTIPLAN_DEBUG=1 可查看详情): " if i18n.language() == "zh"
                        else "Internal error (please report it; set MULTIPLAN_DEBUG=1 for details): ")
                       + f"{type(exc).__name__}: {exc}", err=True)
            ctx.exit(3)
        return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", envvar="MULTIPLAN_STORE", default=None, metavar="PATH_OR_URL",
              help="Store: a .gpkg file (embedded, default ./multiplan.gpkg) or a postgresql:// URL. [env MULTIPLAN_STORE]")
@click.option("--lang", type=click.Choice(i18n.LANGUAGES), envvar="MULTIPLAN_LANG", default="zh",
              help="Language of messages and reports (zh, en). [env MULTIPLAN_LANG]")
@click.pass_context
def cli(ctx: click.Context, store: str | None, lang: str) -> None:
    """multiplan: 多规合一 plan store, conflict engine and site checks."""
    i18n.set_language(lang)
    ctx.obj = {"store": store}


def main() -> None:
    from multiplan.cli import demo, detect, plans, sites, specs, web  # noqa: F401  (registers the commands)

    # When the command is done, nothing is left to collect: frozen, the millions of objects of a load are
    # spared the interpreter's last garbage collections (0.15-0.3 s of every exit). Registered first, it
    # runs after every other exit handler.
    atexit.register(gc.freeze)
    cli(prog_name="multiplan")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
