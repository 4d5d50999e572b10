"""Running a trace (shared/specs/trace-v1.md) on an emulated platform.

:func:`replay_lines` reads JSON Lines and yields one output object per step; a malformed step
raises :class:`TraceError` naming the line, after the earlier steps' outputs were yielded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from rmp import RmpFault, RmpResult
from sp_emu.abi.buffers import BUFFERS
from sp_emu.abi.commands import CommandId
from sp_emu.abi.launch import PageType
from sp_emu.abi.status import status_name
from sp_emu.cpu import GuestCpu, VmrunFailed
from sp_emu.firmware import COMMANDS
from sp_emu.platform import Platform, PlatformConfig
from sp_emu.products import PRODUCTS
from sp_emu.trace import values as V
from sp_emu.trace.values import StepError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PAGE_TYPES = {t.name: t.value for t in PageType}


class TraceError(Exception):
    """A malformed trace line: ``line`` is its 1-based number in the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Member:
    """One member of a step: how to read it, whether it is required, and its default."""

    read: Callable[[Any, str], Any]
    required: bool
    default: Any = None


def _req(read: Callable[[Any, str], Any]) -> Member:
    return Member(read, True)


def _opt(read: Callable[[Any, str], Any], default: Any) -> Member:
    return Member(read, False, default)


INT = V.integer
BYTES = V.hexbytes
BOOL = V.boolean
SIZE = V.page_size


def _vmpl(value: Any, name: str) -> int:
    v = V.integer(value, name)
    if v > 3:
        raise StepError(f"{name} must be 0-3")
    return v


def _perms(value: Any, name: str) -> int:
    return V.integer(value, name, bits=8)


def _asid(value: Any, name: str) -> int:
    return V.integer(value, name, bits=32)


# Members of every step, by op (trace-v1 "Host steps" and "Guest steps").
STEP_MEMBERS: dict[str, dict[str, Member]] = {
    "platform": {
        "memory": _opt(V.memory_size, None),
        "product": _opt(V.text, None),
        "smt": _opt(BOOL, None),
        "max_asid": _opt(INT, None),
        "seed": _opt(BYTES, None),
        "api_major": _opt(INT, None),
        "api_minor": _opt(INT, None),
        "build": _opt(INT, None),
    },
    "write": {"spa": _req(INT), "data": _req(BYTES)},
    "read": {"spa": _req(INT), "length": _req(INT)},
    "rmpupdate": {
        "spa": _req(INT),
        "assigned": _req(BOOL),
        "page_size": _req(SIZE),
        "immutable": _req(BOOL),
        "asid": _req(_asid),
        "gpa": _req(INT),
    },
    "psmash": {"spa": _req(INT)},
    "rmpread": {"spa": _req(INT)},
    "wbinvd": {},
    "npt_map": {
        "asid": _req(_asid),
        "gpa": _req(INT),
        "spa": _req(INT),
        "page_size": _req(SIZE),
        "count": _opt(INT, 1),
    },
    "fw": {},  # read by _fw_step
    "pvalidate": {
        "asid": _req(_asid),
        "vmpl": _req(_vmpl),
        "gpa": _req(INT),
        "page_size": _req(SIZE),
        "validate": _req(BOOL),
    },
    "rmpadjust": {
        "asid": _req(_asid),
        "vmpl": _req(_vmpl),
        "gpa": _req(INT),
        "page_size": _req(SIZE),
        "target_vmpl": _req(_vmpl),
        "perms": _req(_perms),
        "vmsa": _req(BOOL),
    },
    "guest_write": {
        "asid": _req(_asid),
        "vmpl": _req(_vmpl),
        "gpa": _req(INT),
        "data": _req(BYTES),
        "private": _opt(BOOL, True),
    },
    "guest_read": {
        "asid": _req(_asid),
        "vmpl": _req(_vmpl),
        "gpa": _req(INT),
        "length": _req(INT),
        "private": _opt(BOOL, True),
    },
}


def read_members(op: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The step's members, read and checked; StepError for a missing or unknown one."""
    spec = STEP_MEMBERS[op]
    unknown = sorted(set(obj) - set(spec) - {"op"})
    if unknown:
        raise StepError(f"{op} has no member {unknown[0]!r}")
    out: dict[str, Any] = {}
    for name, member in spec.items():
        if name in obj:
            out[name] = member.read(obj[name], name)
        elif member.required:
            raise StepError(f"{op} needs member {name!r}")
        else:
            out[name] = member.default
    return out


def _fault(fault: RmpFault) -> dict[str, Any]:
    out: dict[str, Any] = {"result": "FAULT", "fault": fault.vector.value}
    if fault.error_code:
        out["error_code"] = fault.error_code
    return out


def _entry_out(readout: Any) -> dict[str, Any]:
    e = readout.entry
    return {
        "assigned": e.assigned,
        "page_size": e.page_size.label,
        "immutable": e.immutable,
        "validated": e.validated,
        "vmsa": e.vmsa,
        "asid": e.asid,
        "gpa": e.gpa,
        "perms": list(e.perms),
        "state": e.state.name,
    }


class TraceRunner:
    """Runs steps in order on one platform, built by the first step or by default."""

    def __init__(self) -> None:
        self.platform: Platform | None = None
        self.steps = 0

    def _machine(self) -> Platform:
        if self.platform is None:
            self.platform = Platform()
        return self.platform

    def run_step(self, obj: Any) -> dict[str, Any]:
        """Run one step (a decoded JSON value); StepError if it is malformed."""
        if not isinstance(obj, dict):
            raise StepError("a step is a JSON object")
        op = obj.get("op")
        if not isinstance(op, str):
            raise StepError('a step needs a string member "op"')
        if op not in STEP_MEMBERS:
            raise StepError(f"unknown op {op!r}")
        if op == "platform":
            if self.platform is not None:
                raise StepError("platform must be the first step")
            out = self._platform_step(read_members(op, obj))
        elif op == "fw":
            out = self._fw_step(obj)
        else:
            out = self._host_or_guest(op, read_members(op, obj))
        self.steps += 1
        return {"step": self.steps, "op": op, **out}

    # --- platform ------------------------------------------------------------------------------
    def _platform_step(self, m: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in m.items() if v is not None}
        if "product" in kwargs and kwargs["product"] not in PRODUCTS:
            raise StepError(f"unknown product {kwargs['product']!r}")
        try:
            self.platform = Platform(PlatformConfig(**kwargs))
        except ValueError as err:
            raise StepError(str(err)) from None
        c = self.platform.config
        return {
            "result": "OK",
            "memory": c.memory,
            "product": c.product,
            "smt": c.smt,
            "max_asid": self.platform.fw.state.max_asid,
        }

    # --- host and guest --------------------------------------------------------------------------
    def _host_or_guest(self, op: str, m: dict[str, Any]) -> dict[str, Any]:
        p = self._machine()
        cpu = p.cpu
        try:
            if op == "write":
                if not p.memory.contains(m["spa"], len(m["data"])):
                    raise StepError("write runs past the platform's memory")
                cpu.host_write(m["spa"], m["data"])
                return {"result": "OK"}
            if op == "read":
                if not p.memory.contains(m["spa"], m["length"]):
                    raise StepError("read runs past the platform's memory")
                return {"result": "OK", "data": cpu.host_read(m["spa"], m["length"]).hex()}
            if op == "rmpupdate":
                rc = cpu.rmpupdate(
                    m["spa"],
                    assigned=m["assigned"],
                    page_size=m["page_size"],
                    immutable=m["immutable"],
                    asid=m["asid"],
                    gpa=m["gpa"],
                )
                return {"result": rc.name}
            if op == "psmash":
                return {"result": cpu.psmash(m["spa"]).name}
            if op == "rmpread":
                rc, readout = cpu.rmpread(m["spa"])
                out: dict[str, Any] = {"result": rc.name}
                if readout is not None:
                    out["entry"] = _entry_out(readout)
                return out
            if op == "wbinvd":
                cpu.wbinvd()
                return {"result": "OK"}
            if op == "npt_map":
                try:
                    cpu.npt_map(m["asid"], m["gpa"], m["spa"], m["page_size"], m["count"])
                except ValueError as err:
                    raise StepError(str(err)) from None
                return {"result": "OK"}
            return self._guest(op, m, p)
        except RmpFault as fault:
            return _fault(fault)
        except VmrunFailed as err:
            return {"result": "VMRUN_FAILED", "reason": str(err)}

    def _guest(self, op: str, m: dict[str, Any], p: Platform) -> dict[str, Any]:
        vcpu = GuestCpu(m["asid"], m["vmpl"])
        if op == "pvalidate":
            res = p.cpu.pvalidate(vcpu, m["gpa"], page_size=m["page_size"], validate=m["validate"])
            out: dict[str, Any] = {"result": res.result.name}
            if res.result is RmpResult.SUCCESS:
                out["changed"] = res.changed
            return out
        if op == "rmpadjust":
            rc = p.cpu.rmpadjust(
                vcpu,
                m["gpa"],
                page_size=m["page_size"],
                target_vmpl=m["target_vmpl"],
                perms=m["perms"],
                vmsa=m["vmsa"],
            )
            return {"result": rc.name}
        if op == "guest_write":
            p.cpu.guest_write(vcpu, m["gpa"], m["data"], private=m["private"])
            return {"result": "OK"}
        data = p.cpu.guest_read(vcpu, m["gpa"], m["length"], private=m["private"])
        return {"result": "OK", "data": data.hex()}

    # --- firmware -----------------------------------------------------------------------------
    def _fw_step(self, obj: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(obj) - {"op", "cmd", "fields", "buffer"})
        if unknown:
            raise StepError(f"fw has no member {unknown[0]!r}")
        if "cmd" not in obj:
            raise StepError("fw needs member 'cmd'")
        cmd = obj["cmd"]
        if isinstance(cmd, str) and not cmd.strip().lower().startswith("0x") and not cmd.isdigit():
            try:
                command_id = int(CommandId[cmd])
            except KeyError:
                raise StepError(f"unknown command {cmd!r}") from None
        else:
            command_id = V.integer(cmd, "cmd", bits=32)
        if ("fields" in obj) == ("buffer" in obj):
            raise StepError("fw needs exactly one of 'fields' and 'buffer'")
        known = command_id in COMMANDS or command_id in set(CommandId)
        layout = BUFFERS.get(CommandId(command_id)) if known else None
        if "buffer" in obj:
            raw = V.hexbytes(obj["buffer"], "buffer")
            if layout is not None and len(raw) != layout.size:
                raise StepError(f"buffer of {CommandId(command_id).name} is {layout.size:#x} bytes")
        else:
            fields = obj["fields"]
            if not isinstance(fields, dict):
                raise StepError("fields must be a JSON object")
            if layout is None:
                if fields:
                    raise StepError(f"command {command_id:#x} has no fields")
                raw = b""
            else:
                raw = layout.build(_read_fields(layout, fields))
        result = self._machine().fw.execute(command_id, raw)
        out: dict[str, Any] = {
            "cmd": CommandId(command_id).name if layout is not None else command_id,
            "result": status_name(int(result.status)),
            "status": int(result.status),
        }
        if result.out is not None:
            out["out"] = dict(result.out)
        if result.detail:
            out["detail"] = result.detail
        return out


def _read_fields(layout: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Buffer field values from a trace's ``fields`` object (trace-v1 "Firmware command
    fields"): integers, one-bit flags, page sizes, page types by name, hex byte strings."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        info = layout.fields.get(name)
        if info is None:
            raise StepError(f"{layout.name} has no field {name!r}")
        if info.blob:
            v: Any = V.hexbytes(value, name, length=info.size)
        elif name == "page_size":
            v = V.page_size(value, name)
        elif name == "page_type" and isinstance(value, str) and value.upper() in PAGE_TYPES:
            v = PAGE_TYPES[value.upper()]
        elif info.width == 1:
            v = V.bit(value, name)
        else:
            v = V.integer(value, name)
        if not info.fits(v):
            raise StepError(f"{name} value {v:#x} does not fit its field")
        out[name] = v
    return out


def replay_lines(
    lines: Iterable[str], runner: TraceRunner | None = None
) -> Iterator[dict[str, Any]]:
    """Run a trace given as lines; yields one output object per step.

    Blank lines and ``#`` comments produce nothing.  A malformed step raises TraceError with
    its line number; the outputs of the steps before it have been yielded already.
    """
    runner = runner or TraceRunner()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise TraceError(number, f"not valid JSON ({err.msg} at column {err.colno})") from None
        try:
            yield runner.run_step(obj)
        except StepError as err:
            raise TraceError(number, str(err)) from None


def dump_trace(steps: Iterable[dict[str, Any]]) -> str:
    """Trace steps (as recorded by ``Platform.start_recording``) as JSON Lines text."""
    return "".join(json.dumps(step, separators=(", ", ": ")) + "\n" for step in steps)
