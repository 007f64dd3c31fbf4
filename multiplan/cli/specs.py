"""`multiplan layers` and `multiplan validate`."""

from __future__ import annotations

import click

from multiplan import i18n
from multiplan.cli import cli
from multiplan.specs import load_layer_specs


@cli.command("layers")
def layers_command() -> None:
    """List the plan layers and their specs."""
    lang = i18n.language()
    for spec in load_layer_specs().values():
        corridor = f"  corridor {spec.corridor.default_m:g}–{max(spec.corridor.widths_m.values()):g} m" if spec.corridor else ""
        click.echo(f"{spec.id:<12} {spec.title(lang)}  [{spec.geometry}{', coverage' if spec.coverage else ''}, "
                   f"{spec.precision}]  class {spec.class_field} -> {spec.crosswalk.id} "
                   f"({len(spec.crosswalk.rows)} codes){corridor}")


@cli.command("validate")
def validate_command() -> None:
    """Check every layer spec and crosswalk (and rule file) against its schema."""
    from multiplan.validation import validate_all

    checked = validate_all()
    for line in checked:
        click.echo(f"ok  {line}")
    click.echo(("全部配置有效" if i18n.language() == "zh" else "all specs are valid") + f" ({len(checked)})")
