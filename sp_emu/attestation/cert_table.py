"""The extended guest request's certificate table (attestation.md §7; GHCB specification).

The hypervisor fills the guest's certificate pages with 24-byte entries (GUID, OFFSET,
LENGTH), an all-zero terminating entry, and then the certificates; OFFSET counts from the
start of the buffer.  GUIDs are stored in RFC 4122 byte order (go-sev-guest, virtee/sev).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from rmp import PAGE_4K as PAGE
from sp_emu.abi.messages import CERT_TABLE_ENTRY

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
"""The ASK, and also the ASVK that certifies VLEKs."""
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
CRL_GUID = uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea")
CERT_GUIDS: dict[str, uuid.UUID] = {
    "ark": ARK_GUID,
    "ask": ASK_GUID,
    "vcek": VCEK_GUID,
    "vlek": VLEK_GUID,
    "crl": CRL_GUID,
}
"""Certificate names -> GUIDs."""

GuidLike = uuid.UUID | str
CertMap = Mapping[uuid.UUID, bytes] | Mapping[str, bytes] | Mapping[GuidLike, bytes]
"""Certificates by GUID or name (``ark``, ``ask``, ``vcek``, ``vlek``, ``crl``)."""


class CertTableError(ValueError):
    """A certificate buffer whose table is malformed."""


@dataclass(frozen=True)
class CertEntry:
    """One certificate of the table."""

    guid: uuid.UUID
    offset: int
    length: int
    data: bytes

    @property
    def name(self) -> str:
        """``ark``, ``ask``, ``vcek``, ... or the GUID for an unknown one."""
        for name, guid in CERT_GUIDS.items():
            if guid == self.guid:
                return name
        return str(self.guid)


def to_guid(value: GuidLike) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    return CERT_GUIDS[value] if value in CERT_GUIDS else uuid.UUID(value)


def build_cert_table(certs: CertMap) -> bytes:
    """The table (in ``certs``' order, then the zero entry) followed by the certificates."""
    entries = [(to_guid(g), bytes(data)) for g, data in certs.items()]
    offset = (len(entries) + 1) * CERT_TABLE_ENTRY.size
    table = b""
    blobs = b""
    for guid, data in entries:
        table += CERT_TABLE_ENTRY.build({"guid": guid.bytes, "offset": offset, "length": len(data)})
        blobs += data
        offset += len(data)
    return table + bytes(CERT_TABLE_ENTRY.size) + blobs


def pages_needed(certs: CertMap) -> int:
    """Whole pages the table and certificates take."""
    return -(-len(build_cert_table(certs)) // PAGE)


def parse_cert_table(buffer: bytes) -> list[CertEntry]:
    """The certificates a buffer holds; CertTableError if the table has no terminator or an
    entry points into the table or past the buffer."""
    size = CERT_TABLE_ENTRY.size
    fields = []
    pos = 0
    while True:
        raw = buffer[pos : pos + size]
        if len(raw) < size:
            raise CertTableError("the certificate table has no terminating zero entry")
        if not any(raw):
            break
        fields.append(CERT_TABLE_ENTRY.parse(raw))
        pos += size
    table_end = pos + size
    out: list[CertEntry] = []
    for i, f in enumerate(fields):
        start, length = f["offset"], f["length"]
        if start < table_end or start + length > len(buffer):
            raise CertTableError(f"entry {i} points outside the certificate area")
        guid = uuid.UUID(bytes=f["guid"])
        out.append(CertEntry(guid, start, length, buffer[start : start + length]))
    return out
