"""GUIDs that identify entries of the OVMF footer table and of the SEV hashes table.

All GUIDs are stored in images in EFI ("mixed-endian") byte order: the first three fields
little-endian, the last eight bytes as written (``uuid.UUID.bytes_le`` order). :class:`Guid`
holds one; it is not :class:`uuid.UUID` because importing :mod:`uuid` (which imports
:mod:`platform`) costs the command line about 2 ms of start-up, but it compares and hashes
equal to the ``uuid.UUID`` of the same value, so either may be used to look one up.
Values from EDK2 ``OvmfPkg/ResetVector`` and QEMU ``target/i386/sev.c`` /
``hw/i386/pc_sysfw_ovmf.c`` (reference: launch-measurement.md §9.2-9.3).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final
    from uuid import UUID

__all__ = [
    "GUID_NAMES",
    "OVMF_TABLE_FOOTER_GUID",
    "SEV_CMDLINE_ENTRY_GUID",
    "SEV_ES_RESET_BLOCK_GUID",
    "SEV_HASH_TABLE_GUID",
    "SEV_HASH_TABLE_HEADER_GUID",
    "SEV_INITRD_ENTRY_GUID",
    "SEV_KERNEL_ENTRY_GUID",
    "SEV_METADATA_GUID",
    "SEV_SECRET_BLOCK_GUID",
    "SVSM_INFO_GUID",
    "TDX_METADATA_GUID",
    "Guid",
    "guid_name",
]

_Int = int  # the name ``int`` means the property inside the class


class Guid:
    """A GUID as EFI stores it: written ``"96b582de-1fb2-45f7-baea-a366c55a082d"``, held as
    the 16 bytes in EFI byte order (:attr:`bytes_le`)."""

    __slots__ = ("bytes_le",)
    bytes_le: bytes

    def __init__(self, text: str) -> None:
        parts = text.strip("{}").split("-")
        if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
            raise ValueError(f"not a GUID: {text!r}")
        raw = bytes.fromhex("".join(parts))
        object.__setattr__(self, "bytes_le", _swap(raw))

    @classmethod
    def from_bytes_le(cls, raw: bytes) -> Guid:
        """The GUID whose EFI-order bytes are ``raw`` (16 bytes)."""
        if len(raw) != 16:
            raise ValueError(f"a GUID is 16 bytes, not {len(raw)}")
        guid = cls.__new__(cls)
        object.__setattr__(guid, "bytes_le", bytes(raw))
        return guid

    @property
    def int(self) -> _Int:
        """The GUID as a 128-bit integer (``uuid.UUID.int``)."""
        return int.from_bytes(_swap(self.bytes_le), "big")

    def __str__(self) -> str:
        h = _swap(self.bytes_le).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def __repr__(self) -> str:
        return f"Guid({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        theirs = getattr(other, "bytes_le", None)
        if not isinstance(theirs, bytes):
            return NotImplemented
        return theirs == self.bytes_le

    def __hash__(self) -> _Int:
        return hash(self.int)  # as uuid.UUID hashes, so the two find each other in a dict

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Guid is immutable")


def _swap(raw: bytes) -> bytes:
    """Between EFI byte order and the big-endian order of the written form (an involution)."""
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]


#: Last entry of the footer table; its u16 size is the size of the whole table.
OVMF_TABLE_FOOTER_GUID: Final = Guid("96b582de-1fb2-45f7-baea-a366c55a082d")
#: {u32 base GPA, u32 size} of the RAM area where QEMU puts the kernel hashes table.
SEV_HASH_TABLE_GUID: Final = Guid("7255371f-3a3b-4b04-927b-1da6efa8d454")
#: {u32 base GPA, u32 size} of the SEV (pre-SNP) launch-secret injection area.
SEV_SECRET_BLOCK_GUID: Final = Guid("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
#: {u32 reset address}: where SEV-ES/SNP application processors start (CS base | IP).
SEV_ES_RESET_BLOCK_GUID: Final = Guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
#: {u32 offset from the end of the image} of the "ASEV" SEV metadata header.
SEV_METADATA_GUID: Final = Guid("dc886566-984a-4798-a75e-5585a7bf67cc")
#: {u32 offset} of the Intel TDX metadata (present in OVMF builds; ignored for SEV).
TDX_METADATA_GUID: Final = Guid("e47a6535-984a-4798-865e-4685a7bf8ec2")
#: {u32 offset of the SVSM entry point from the SVSM load GPA} (COCONUT-SVSM images).
SVSM_INFO_GUID: Final = Guid("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd")

#: Header GUID of the kernel/initrd/cmdline hashes table QEMU builds for direct boot.
SEV_HASH_TABLE_HEADER_GUID: Final = Guid("9438d606-4f22-4cc9-b479-a793d411fd21")
#: Hashes-table entry holding SHA-256 of the command line (with its NUL).
SEV_CMDLINE_ENTRY_GUID: Final = Guid("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
#: Hashes-table entry holding SHA-256 of the initrd.
SEV_INITRD_ENTRY_GUID: Final = Guid("44baf731-3a2f-4bd7-9af1-41e29169781d")
#: Hashes-table entry holding SHA-256 of the kernel file.
SEV_KERNEL_ENTRY_GUID: Final = Guid("4de79437-abd2-427f-b835-d5b172d2045b")

#: Human-readable names for display and error messages.
GUID_NAMES: Final[dict[Guid, str]] = {
    OVMF_TABLE_FOOTER_GUID: "OVMF table footer",
    SEV_HASH_TABLE_GUID: "SEV hash table block",
    SEV_SECRET_BLOCK_GUID: "SEV secret block",
    SEV_ES_RESET_BLOCK_GUID: "SEV-ES reset block",
    SEV_METADATA_GUID: "OVMF SEV metadata offset",
    TDX_METADATA_GUID: "TDX metadata offset",
    SVSM_INFO_GUID: "SVSM info",
    SEV_HASH_TABLE_HEADER_GUID: "SEV hashes table header",
    SEV_CMDLINE_ENTRY_GUID: "SEV hashes: cmdline",
    SEV_INITRD_ENTRY_GUID: "SEV hashes: initrd",
    SEV_KERNEL_ENTRY_GUID: "SEV hashes: kernel",
}


def guid_name(guid: Guid | UUID) -> str:
    """Return ``"<name> (<guid>)"`` for a known GUID, else the GUID string."""
    name = GUID_NAMES.get(guid)  # type: ignore[arg-type]  # a UUID finds its Guid
    return f"{name} ({guid})" if name else str(guid)
