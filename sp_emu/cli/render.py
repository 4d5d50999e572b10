"""Terminal rendering with rich: the only module of sp-emu that imports it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

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


def _flag(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[bold red]no[/]"


def launch_summary(summary: dict[str, Any], out: TextIO) -> None:
    """``sp-emu launch``: the launch at a glance, the PAGE_INFO counts and the guest's RMP."""
    from rich.panel import Panel

    console = Console(file=out, soft_wrap=False, width=max(120, Console(file=out).width))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    state = summary["guest_state"]
    state_style = "green" if state == "RUNNING" else "yellow"
    facts.add_row("image", summary["image"])
    facts.add_row("hypervisor", f"{summary['hypervisor']} ({summary['hypervisor_description']})")
    facts.add_row("mode / VMM", f"{summary['mode']} / {summary['vmm_type']}")
    facts.add_row("guest policy", summary["guest_policy"])
    facts.add_row(
        "vCPUs",
        f"{summary['vcpus']} (signature {summary['vcpu_sig']}, "
        f"SEV_FEATURES {summary['guest_features']})",
    )
    facts.add_row("launch digest", f"[cyan]{summary['digest']}[/]")
    facts.add_row(
        "ASID / context",
        f"{summary['asid']} / {summary['gctx']} ({summary['gctx_rmp_state']})",
    )
    facts.add_row("ID block", "checked" if summary["id_block_en"] else "none")
    facts.add_row("guest state", f"[{state_style}]{state}[/]")
    console.print(Panel(facts, title="sp-emu launch", expand=False))

    counts = Table(title=f"PAGE_INFO measured: {summary['page_info_total']}")
    counts.add_column("page type")
    counts.add_column("count", justify="right")
    for name, count in summary["page_info"].items():
        counts.add_row(name, str(count), style=None if count else "dim")
    console.print(counts)

    rmp = Table(
        title=f"guest pages in the RMP: {summary['guest_pages']} "
        f"(all GUEST_VALID: {_flag(summary['all_guest_valid'])}, "
        f"VMSA pages: {summary['vmsa_pages']})"
    )
    rmp.add_column("GPA range")
    rmp.add_column("pages", justify="right")
    rmp.add_column("LAUNCH_UPDATE type")
    rmp.add_column("RMP state")
    rmp.add_column("VMSA")
    for row in summary["rmp"]:
        good = row["state"] == "GUEST_VALID"
        rmp.add_row(
            f"{row['gpa']}..{row['gpa_end']}",
            str(row["pages"]),
            row["page_type"],
            f"[{'green' if good else 'bold red'}]{row['state']}[/]",
            "[magenta]VMSA[/]" if row["vmsa"] else "",
        )
    console.print(rmp)
    report = summary.get("report")
    if report:
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold")
        facts.add_column()
        facts.add_row("report version", str(report["version"]))
        facts.add_row("requested at VMPL", str(report["vmpl"]))
        facts.add_row("REPORTED_TCB", report["reported_tcb"])
        facts.add_row("CHIP_ID", report["chip_id"][:32] + "...")
        facts.add_row("MEASUREMENT = launch digest", _flag(report["measurement_matches"]))
        facts.add_row("chain and signature verify", _flag(report["verified"]))
        facts.add_row("certificates from the host", str(report["certificates_from_host"]))
        for path in report.get("written", []):
            facts.add_row("written", path)
        console.print(Panel(facts, title="attestation report (guest request)", expand=False))


def report_fields(fields: dict[str, Any], title: str, out: TextIO) -> None:
    """An attestation report, field by field."""
    console = Console(file=out, soft_wrap=False)
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name, value in fields.items():
        table.add_row(name, str(value))
    console.print(table)


def verification(checks: list[Any], title: str, out: TextIO) -> None:
    """Each verification check with its outcome."""
    console = Console(file=out, soft_wrap=False)
    table = Table(title=title)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in checks:
        table.add_row(check.name, _flag(check.ok), check.detail)
    console.print(table)
