"""``podium policy check FILE | test FILE``: validate a YAML policy, and see which rules fire for an input."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

policy_app = typer.Typer(help="Policies in YAML: validate a file, try it on facts.", no_args_is_help=True)


def _load(file: str) -> Any:
    from ..errors import ConfigError
    from ..policies import load
    from . import _fail

    try:
        return load(file)
    except ConfigError as exc:
        _fail(str(exc))


@policy_app.command("check")
def check_command(file: Annotated[str, typer.Argument(help="The policy file (YAML)")]) -> None:
    """Validate a policy file; errors name the line. Exit 1 when the file cannot be used."""
    from . import out

    p = _load(file)
    out.print(
        Text.assemble(
            ("✔ ", "green"),
            (p.name, "bold"),
            f" (version {p.version}): {len(p.rules)} rule(s) at {', '.join(p.points)}",
        )
    )
    for r in p.rules:
        target = r.decision.model if r.decision.action == "switch" else ""
        out.print(
            f"  line {r.line}: {r.name}: {', '.join(r.points)} -> {r.decision.action} {target}".rstrip()
        )


@policy_app.command("test")
def test_command(
    file: Annotated[str, typer.Argument(help="The policy file (YAML)")],
    point: Annotated[str, typer.Option("--point", help="The point: model.before, tool.before, ...")],
    facts: Annotated[
        str, typer.Option("--facts", help='The facts as JSON: \'{"tool": "refund", ...}\'')
    ] = "{}",
) -> None:
    """Show which rules of FILE fire at POINT for the given facts, and the decision. Facts not given are
    absent (``text`` gives ``pii`` its value, as at run time)."""
    from ..policies import POINTS, Facts
    from ..policies.enforce import _pii_kinds
    from . import _fail, out

    p = _load(file)
    if point not in POINTS:
        _fail(f"unknown point {point!r}; use one of {', '.join(POINTS)}")
    try:
        given = json.loads(facts)
    except json.JSONDecodeError as exc:
        _fail(f"--facts is not valid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(given, dict):
        _fail("--facts must be a JSON object")
    f = Facts(given, pii=_pii_kinds)
    fired = p.firing(point, f)
    table = Table("line", "rule", "then", "reason", title=f"{p.name} at {point}", title_justify="left")
    for r in fired:
        then = f"switch to {r.decision.model}" if r.decision.action == "switch" else r.decision.action
        table.add_row(str(r.line), r.name, then, r.decision.reason)
    if not fired:
        out.print(f"no rule of {p.name} fires at {point}: allow")
        return
    out.print(table)
    d = p.evaluate(point, f)
    if d is not None:
        out.print(Text.assemble("decision: ", (d.action, "bold"), f" (the first rule that fires: {d.rule})"))
