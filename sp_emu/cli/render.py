"""Terminal rendering with rich: the only module of sp-emu that imports it."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

_OK = {"OK", "SUCCESS"}
_SKIP = {"step", "op", "result", "cmd", "status"}


def _result_style(result: str) -> str:
    if result in _OK:
        return "green"
    if result == "FAULT":
        return "bold red"
    return "yellow"


def _details(step: dict[str, Any]) -> str:
    parts = []
    if "status" in step:
        parts.append(f"status={step['status']:#04x}")
    for key, value in step.items():
        if key in _SKIP:
            continue
        if key == "error_code":
            parts.append(f"error_code={value:#x}")
        elif isinstance(value, dict):
            inner = ", ".join(
                f"{k}={v:#x}"
                if isinstance(v, int) and not isinstance(v, bool) and v > 9
                else f"{k}={v}"
                for k, v in value.items()
            )
            parts.append(f"{key}: {inner}")
        else:
            parts.append(f"{key}={value}")
    return "; ".join(parts)


def replay_table(steps: list[dict[str, Any]], title: str, out: TextIO) -> None:
    """One row per step: number, operation, result, and what else the step returned."""
    console = Console(file=out, soft_wrap=False, width=max(100, Console(file=out).width))
    table = Table(title=f"sp-emu replay: {title}", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("op")
    table.add_column("result")
    table.add_column("details", overflow="fold")
    for step in steps:
        op = step["op"] if "cmd" not in step else f"fw {step['cmd']}"
        result = str(step["result"])
        table.add_row(
            str(step["step"]), op, f"[{_result_style(result)}]{result}[/]", _details(step)
        )
    console.print(table)
