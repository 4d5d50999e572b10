"""End-to-end scenarios composed from the layers below, for the command line and for users.

:func:`attested_launch` is the whole life of an SNP guest up to its first attestation: the
upstream-KVM model launches the guest through the firmware, the boot vCPU passes VMRUN, the
guest registers a GHCB, reads its VMPCK from its secrets page, and asks for an extended report
through the guest message protocol (NAE event 0x8000_0012); KVM hands the request to
SNP_GUEST_REQUEST and returns the report with the host's certificate table (ARK, ASK, VCEK).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmp import PAGE_4K as PAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sp_emu.certs import ChipCertificates
    from sp_emu.hypervisors.kvm_runtime import KvmVm
    from sp_emu.launch_spec import LaunchSpec
    from sp_emu.platform import Platform

CERT_PAGES = 8


class ScenarioError(Exception):
    """The scenario could not go on (e.g. the image has no secrets page, or the firmware
    refused the request); the message says why."""


@dataclass
class AttestedLaunch:
    """A launched guest and the report it obtained."""

    platform: Platform
    vm: KvmVm
    report: bytes
    certs: ChipCertificates
    cert_table: list[Any] = field(default_factory=list)
    """The extended request's certificate entries (GUID and DER bytes), as the guest got them."""


def _free_gpas(occupied: list[tuple[int, int]], count: int, start: int = 0x10_0000) -> list[int]:
    """``count`` page GPAs from ``start`` up that no launched range covers."""
    out: list[int] = []
    gpa = start
    while len(out) < count:
        if not any(lo <= gpa < hi for lo, hi in occupied):
            out.append(gpa)
        gpa += PAGE
    return out


def attested_launch(
    spec: LaunchSpec,
    platform: Platform | None = None,
    *,
    report_data: bytes = bytes(64),
    vmpck: int = 0,
) -> AttestedLaunch:
    """Launch ``spec`` under upstream KVM, boot the BSP and have the guest fetch an extended
    attestation report with ``report_data``.  Raises LaunchError/ImageError/SpecError from the
    launch, ScenarioError afterwards."""
    from sp_emu.attestation import GuestMessenger
    from sp_emu.certs import ChipCertificates, der
    from sp_emu.guest import GuestSoftware, PscOp
    from sp_emu.guest.requests import GhcbRequestChannel
    from sp_emu.hypervisors.kvm_runtime import KvmVm
    from sp_emu.images import PageType
    from sp_emu.launch_spec import options_for, plan_for, policy_for
    from sp_emu.platform import Platform

    if len(report_data) != 64:
        raise ScenarioError("REPORT_DATA is exactly 64 bytes")
    p = platform or Platform()
    plan = plan_for(spec)
    vm = KvmVm.launch(p, plan, options_for(spec), hypervisor=policy_for(spec))
    certs = ChipCertificates(p.fw.chip)
    vm.attach_certificates(
        {"ark": der(certs.ark_cert), "ask": der(certs.ask_cert), "vcek": der(certs.vcek_cert())}
    )
    secrets = [i.gpa for i in plan.items if i.page_type == PageType.SECRETS]
    if not secrets:
        raise ScenarioError("the image has no SNP secrets page, so the guest has no VMPCK")
    guest = GuestSoftware(vm.run(0))
    occupied = [(i.gpa, i.gpa + i.length) for i in plan.items]
    ghcb, req, rsp, *cert_pages = _free_gpas(occupied, 3 + CERT_PAGES)
    if cert_pages != list(range(cert_pages[0], cert_pages[0] + CERT_PAGES * PAGE, PAGE)):
        raise ScenarioError("no contiguous free guest pages for the certificate buffer")
    if guest.page_state_change(ghcb, PscOp.SHARED):
        raise ScenarioError("the host refused to share the GHCB page")
    guest.register_ghcb(ghcb)
    channel = GhcbRequestChannel(guest, req, rsp, cert_pages[0], CERT_PAGES)
    driver = GuestMessenger.from_secrets_page(guest.read(secrets[0], PAGE), vmpck)
    response = driver.get_extended_report(channel, report_data, cert_pages=CERT_PAGES)
    if response.status or response.report is None:
        raise ScenarioError(f"the firmware answered the report request with {response.status:#x}")
    return AttestedLaunch(p, vm, response.report, certs, list(response.certs or []))
