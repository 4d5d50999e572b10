"""MSG_KEY_REQ derivation (attestation.md §8): checked against an independent implementation
of the NIST SP 800-108 KDF and of the 0xA8-byte mix data, deterministic, and sensitive to
exactly the fields the request selects."""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable

import pytest

from sp_emu.abi.commands import CommandId as C
from sp_emu.attestation import nist_kdf
from sp_emu.hypervisors import LaunchOptions
from sp_emu.state import GuestContext
from sp_emu.tcb import TcbVersion
from tests.attestation.att_helpers import SUCCESS, Guest, launched_guest

POLICY, IMAGE_ID, FAMILY_ID, MEASUREMENT, GUEST_SVN, TCB_VERSION = (1 << i for i in range(6))


def kdf(key: bytes, label: bytes, context: bytes, length: int = 32) -> bytes:
    """SP 800-108 counter mode, HMAC-SHA-256, i and L as 32-bit little-endian (§8.3)."""
    out = b""
    i = 1
    while len(out) < length:
        msg = struct.pack("<I", i) + label + b"\0" + context + struct.pack("<I", 8 * length)
        out += hmac.new(key, msg, hashlib.sha256).digest()
        i += 1
    return out[:length]


def mix(ctx: GuestContext, *, root: int, gfs: int, vmpl: int, svn: int = 0, tcb: int = 0) -> bytes:
    """The mix data, packed by hand from the §8.3 table."""
    select = 2 if ctx.author_key_en else 1 if ctx.id_block_en else 0
    digest = {1: ctx.id_key_digest, 2: ctx.author_key_digest}.get(select, bytes(48))
    m = struct.pack(
        "<IIQIIQQ",
        root | select << 1,
        0,
        gfs,
        vmpl,
        svn if gfs & GUEST_SVN else 0,
        tcb if gfs & TCB_VERSION else 0,
        ctx.policy if gfs & POLICY else 0,
    )
    m += ctx.image_id if gfs & IMAGE_ID else bytes(16)
    m += ctx.family_id if gfs & FAMILY_ID else bytes(16)
    m += ctx.ld[:32] if gfs & MEASUREMENT else bytes(32)
    m += ctx.host_data + digest[:32]
    assert len(m) == 0xA8
    return m


@pytest.fixture
def g() -> Guest:
    return launched_guest(opts=LaunchOptions(host_data=b"H" * 32))


def derived(g: Guest, **kw: int) -> bytes:
    rsp = g.driver.get_derived_key(g.host, **kw)
    assert rsp.status == SUCCESS
    return rsp.key


def test_nist_kdf_matches_the_reference_construction() -> None:
    for length in (16, 32, 33, 64, 100):
        assert nist_kdf(b"k" * 48, b"gmsg-keyreq", b"ctx", length) == kdf(
            b"k" * 48, b"gmsg-keyreq", b"ctx", length
        )
    # L is part of every block, so a longer output is not an extension of a shorter one
    assert nist_kdf(b"k", b"l", b"c", 64)[:32] != nist_kdf(b"k", b"l", b"c", 32)


def test_vcek_rooted_key_matches_independent_derivation(g: Guest) -> None:
    st = g.p.fw.state
    tcb = st.committed_tcb
    key = derived(g, guest_field_select=0x3F, tcb_version=tcb.to_int())
    root = g.p.fw.chip.vcek_seed(tcb)
    ctx = mix(g.ctx, root=0, gfs=0x3F, vmpl=0, tcb=tcb.to_int())
    assert key == kdf(root, b"gmsg-keyreq", ctx)


def test_default_root_is_the_vcek_of_the_reported_tcb(g: Guest) -> None:
    st = g.p.fw.state
    key = derived(g)
    reported = st.effective_reported_tcb()
    assert key == kdf(
        g.p.fw.chip.vcek_seed(reported), b"gmsg-keyreq", mix(g.ctx, root=0, gfs=0, vmpl=0)
    )
    lower = TcbVersion.from_int(reported.to_int() - 1)
    assert g.p.run(C.SNP_CONFIG, reported_tcb=lower.to_int()).ok
    key2 = derived(g)
    assert key2 == kdf(
        g.p.fw.chip.vcek_seed(lower), b"gmsg-keyreq", mix(g.ctx, root=0, gfs=0, vmpl=0)
    )
    assert key2 != key


def test_vmrk_rooted_key(g: Guest) -> None:
    key = derived(g, root_key_select=1, vmpl=1)
    assert key == kdf(g.ctx.vmrk, b"gmsg-keyreq", mix(g.ctx, root=1, gfs=0, vmpl=1))
    # the VMRK key does not follow the platform's TCB
    assert g.p.run(C.SNP_CONFIG, reported_tcb=g.p.fw.state.committed_tcb.to_int() - 1).ok
    assert derived(g, root_key_select=1, vmpl=1) == key


def test_vlek_rooted_key(g: Guest) -> None:
    st = g.p.fw.state
    vcek_key = derived(g, key_sel=0)
    assert derived(g, key_sel=1) == vcek_key  # no VLEK: the default is the VCEK
    st.vlek = g.p.fw.chip.vlek_seed(st.committed_tcb)
    expected = kdf(st.vlek, b"gmsg-keyreq", mix(g.ctx, root=0, gfs=0, vmpl=0))
    assert derived(g, key_sel=0) == derived(g, key_sel=2) == expected
    assert derived(g, key_sel=1) == vcek_key


def test_requested_tcb_changes_the_root(g: Guest) -> None:
    committed = g.p.fw.state.committed_tcb
    lower = TcbVersion.from_int(committed.to_int() - (1 << 56))  # microcode one lower
    key = derived(g, guest_field_select=TCB_VERSION, tcb_version=lower.to_int())
    ctx = mix(g.ctx, root=0, gfs=TCB_VERSION, vmpl=0, tcb=lower.to_int())
    assert key == kdf(g.p.fw.chip.vcek_seed(lower), b"gmsg-keyreq", ctx)


def test_deterministic_across_requests_and_identical_platforms() -> None:
    a, b = launched_guest(), launched_guest()
    ka = derived(a, guest_field_select=0x1F)
    assert derived(a, guest_field_select=0x1F) == ka
    assert derived(b, guest_field_select=0x1F) == ka
    c = launched_guest(seed=b"another chip")
    assert derived(c, guest_field_select=0x1F) != ka


# (GFS bit, how to change the guest or the request, request fields used)
def _poke_policy(ctx: GuestContext) -> None:
    ctx.policy ^= 1 << 19


def _poke_image(ctx: GuestContext) -> None:
    ctx.image_id = b"\x01" * 16


def _poke_family(ctx: GuestContext) -> None:
    ctx.family_id = b"\x02" * 16


def _poke_measurement(ctx: GuestContext) -> None:
    ctx.ld = b"\x03" + ctx.ld[1:]


GUEST_FIELDS = [
    (POLICY, _poke_policy),
    (IMAGE_ID, _poke_image),
    (FAMILY_ID, _poke_family),
    (MEASUREMENT, _poke_measurement),
]


@pytest.mark.parametrize(("bit", "poke"), GUEST_FIELDS, ids=["policy", "image", "family", "ld"])
def test_guest_fields_count_only_when_selected(
    g: Guest, bit: int, poke: Callable[[GuestContext], None]
) -> None:
    selected = derived(g, guest_field_select=bit)
    unselected = derived(g, guest_field_select=0x3F & ~bit & ~GUEST_SVN & ~TCB_VERSION)
    assert selected != derived(g, guest_field_select=0)  # the selector itself is mixed in
    poke(g.ctx)
    assert derived(g, guest_field_select=bit) != selected
    assert derived(g, guest_field_select=0x3F & ~bit & ~GUEST_SVN & ~TCB_VERSION) == unselected


def test_only_the_first_32_bytes_of_the_measurement_count(g: Guest) -> None:
    key = derived(g, guest_field_select=MEASUREMENT)
    g.ctx.ld = g.ctx.ld[:32] + b"\xee" * 16
    assert derived(g, guest_field_select=MEASUREMENT) == key


def test_guest_svn_counts_only_when_selected(g: Guest) -> None:
    g.ctx.guest_svn = 5
    a = derived(g, guest_field_select=GUEST_SVN, guest_svn=3)
    assert derived(g, guest_field_select=GUEST_SVN, guest_svn=4) != a
    assert derived(g, guest_svn=3) == derived(g, guest_svn=4)


def test_tcb_version_counts_only_when_selected(g: Guest) -> None:
    tcb = g.p.fw.state.committed_tcb.to_int()
    a = derived(g, guest_field_select=TCB_VERSION, tcb_version=tcb)
    assert derived(g, guest_field_select=TCB_VERSION, tcb_version=tcb - 1) != a
    assert derived(g, tcb_version=tcb) == derived(g, tcb_version=tcb - 1)


def test_always_mixed_vmpl_and_host_data(g: Guest) -> None:
    driver = g.driver_for(1)
    k0 = derived(g, vmpl=1)
    k1 = driver.get_derived_key(g.host, vmpl=1).key
    assert k0 == k1  # the VMPCK used does not matter, the VMPL does
    assert derived(g, vmpl=2) != k0
    g.ctx.host_data = b"X" * 32
    assert derived(g, vmpl=1) != k0


def test_id_and_author_key_digests_are_mixed(g: Guest) -> None:
    base = derived(g)
    g.ctx.id_key_digest = b"\x11" * 48  # ignored: no ID block
    assert derived(g) == base
    g.ctx.id_block_en = True
    with_id = derived(g)
    assert with_id != base
    assert with_id == kdf(
        g.p.fw.chip.vcek_seed(g.p.fw.state.effective_reported_tcb()),
        b"gmsg-keyreq",
        mix(g.ctx, root=0, gfs=0, vmpl=0),
    )
    g.ctx.author_key_en = True  # the author key's digest wins
    g.ctx.author_key_digest = b"\x22" * 48
    assert derived(g) not in (base, with_id)
