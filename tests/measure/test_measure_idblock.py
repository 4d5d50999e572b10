"""``sp-emu id-block`` and LAUNCH_FINISH: the firmware accepts exactly what the command
produced and rejects every alteration with the status of its failed check
(launch-measurement.md §8.4).  sev-snp-measure's ``snp-create-id-block`` is the oracle for
the ID block bytes, the ID authentication page layout and the key digests."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sp_emu.abi.status import SnpStatus as S
from sp_emu.amd_keys import BadKey, public_key_from_amd, public_key_to_amd, verify_amd
from sp_emu.hypervisors import KVM_QEMU, LaunchError, LaunchOptions, launch
from sp_emu.idblock import IdBlock, IdBlockError, load_signing_key, sign_id_block
from sp_emu.images import build_sample_ovmf, snp_launch_plan
from sp_emu.launch_spec import LaunchSpec, run_launch
from sp_emu.platform import Platform
from sp_emu.state import GuestState

VCPUS = 2
ID_SIG = slice(0x040, 0x240)
ID_KEY = slice(0x240, 0x644)
ID_KEY_SIG = slice(0x680, 0x880)
AUTHOR_KEY = slice(0x880, 0xC84)


def parse_text(text: str) -> dict[str, bytes]:
    """The lines snp-create-id-block prints, decoded."""
    lines = text.strip().splitlines()
    props = dict(part.split("=", 1) for part in lines[0].split(","))
    out = {k: base64.b64decode(v) for k, v in props.items()}
    for line in lines[1:]:
        name, value = line.split(": ", 1)
        out[name] = base64.b64decode(value)
    return out


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def amd_public(path: Path) -> bytes:
    return public_key_to_amd(load_key(path).public_key())


def firmware_launch(block: bytes, auth: bytes, auth_key_en: bool, policy: int = 0x30000) -> Any:
    """Launch the sample with the ID block, as KVM/QEMU would; returns (platform, result)."""
    platform = Platform()
    result = launch(
        platform,
        snp_launch_plan(build_sample_ovmf()),
        KVM_QEMU,
        LaunchOptions(
            vcpus=VCPUS, policy=policy, id_block=block, id_auth=auth, auth_key_en=auth_key_en
        ),
    )
    return platform, result


def expect_status(block: bytes, auth: bytes, auth_key_en: bool, status: S) -> None:
    with pytest.raises(LaunchError) as caught:
        firmware_launch(block, auth, auth_key_en)
    assert "SNP_LAUNCH_FINISH" in str(caught.value)
    assert caught.value.result.status == status, str(caught.value)


@pytest.fixture(scope="module")
def digest() -> bytes:
    """The sample's launch digest with two vCPUs (from the firmware)."""
    return run_launch(LaunchSpec(vcpus=VCPUS)).digest


@pytest.fixture()
def produced(sp_emu: Any, keys: Any, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run ``sp-emu id-block --launch --vcpus 2 ... --out DIR`` and return its outputs."""

    def run(*extra: Any, author: bool = True) -> dict[str, Any]:
        out = tmp_path / "out"
        args: list[Any] = ["id-block", "--launch", "--vcpus", VCPUS, "--id-key", keys.id_key]
        if author:
            args += ["--author-key", keys.author_key]
        run = sp_emu(*args, "--out", out, *extra)
        assert run.code == 0, run.err
        text = parse_text(run.out)
        block = (out / "id_block.bin").read_bytes()
        auth = (out / "id_auth.bin").read_bytes()
        assert text["id-block"] == block and text["id-auth"] == auth
        return {"block": block, "auth": auth, "text": text}

    return run


# --- what the firmware accepts -----------------------------------------------------------


def test_launch_finish_accepts_what_id_block_produced(
    produced: Callable[..., dict[str, Any]], keys: Any, digest: bytes
) -> None:
    made = produced("--family-id", "11" * 16, "--image-id", "22" * 16, "--svn", "7")
    assert IdBlock.from_bytes(made["block"]) == IdBlock(
        ld=digest, family_id=b"\x11" * 16, image_id=b"\x22" * 16, guest_svn=7
    )
    platform, result = firmware_launch(made["block"], made["auth"], auth_key_en=True)
    guest = platform.fw.state.guests[result.gctx]
    assert guest.state is GuestState.RUNNING and guest.id_block_en and guest.author_key_en
    assert (guest.family_id, guest.image_id, guest.guest_svn) == (b"\x11" * 16, b"\x22" * 16, 7)
    assert guest.id_key_digest == made["text"]["id_key_hash"]
    assert guest.id_key_digest == hashlib.sha384(amd_public(keys.id_key)).digest()
    assert guest.author_key_digest == made["text"]["author_key"]
    assert guest.author_key_digest == hashlib.sha384(amd_public(keys.author_key)).digest()


def test_without_author_key(produced: Callable[..., dict[str, Any]]) -> None:
    made = produced(author=False)
    assert "author_key" not in made["text"]
    assert made["auth"][AUTHOR_KEY] == bytes(0x404) and made["auth"][4:8] == bytes(4)
    platform, result = firmware_launch(made["block"], made["auth"], auth_key_en=False)
    guest = platform.fw.state.guests[result.gctx]
    assert guest.state is GuestState.RUNNING and guest.author_key_digest == bytes(48)
    # Asking the firmware to check an author key that is not there: AUTH_KEY_ALGO is 0.
    expect_status(made["block"], made["auth"], True, S.INVALID_PARAM)


def test_author_fields_unchecked_without_auth_key_en(
    produced: Callable[..., dict[str, Any]],
) -> None:
    made = produced()
    auth = bytearray(made["auth"])
    auth[ID_KEY_SIG.start] ^= 1
    auth[4] = 0
    firmware_launch(made["block"], bytes(auth), auth_key_en=False)


def test_measurement_flag_and_launch_flag_agree(
    sp_emu: Any, keys: Any, digest: bytes, tmp_path: Path
) -> None:
    """--measurement takes hex or base64; --launch measures the same guest."""
    blocks = []
    for how in (
        ["--measurement", digest.hex()],
        ["--measurement", base64.b64encode(digest).decode()],
        ["--launch", "--vcpus", str(VCPUS)],
    ):
        run = sp_emu("id-block", *how, "--id-key", keys.id_key, "--json")
        assert run.code == 0, run.err
        obj = json.loads(run.out)
        assert obj["measurement"] == digest.hex() and obj["auth_key_en"] is False
        blocks.append(base64.b64decode(obj["id_block"]))
    assert blocks[0] == blocks[1] == blocks[2]


# --- sev-snp-measure's snp-create-id-block as the oracle ---------------------------------


def test_oracle_id_block_bytes_and_key_digests(sp_emu: Any, keys: Any, digest: bytes) -> None:
    id_block_mod = pytest.importorskip("sevsnpmeasure.id_block")
    theirs = parse_text(
        id_block_mod.snp_calc_id_block(digest, str(keys.id_key), str(keys.author_key))
    )
    run = sp_emu(
        "id-block",
        "--measurement",
        base64.b64encode(digest).decode(),
        "--id-key",
        keys.id_key,
        "--author-key",
        keys.author_key,
    )
    assert run.code == 0, run.err
    ours = parse_text(run.out)
    assert set(ours) == set(theirs) == {"id-block", "id-auth", "id_key_hash", "author_key"}
    assert ours["id-block"] == theirs["id-block"]
    assert ours["id_key_hash"] == theirs["id_key_hash"]
    assert ours["author_key"] == theirs["author_key"]
    a, b = ours["id-auth"], theirs["id-auth"]
    assert len(a) == len(b) == 0x1000
    for part in (slice(0, 0x40), ID_KEY, slice(0x644, 0x680), AUTHOR_KEY, slice(0xC84, 0x1000)):
        assert a[part] == b[part], part
    # ECDSA is randomised: check both signatures of both pages instead of their bytes.
    id_pub = public_key_from_amd(a[ID_KEY])
    author_pub = public_key_from_amd(a[AUTHOR_KEY])
    for auth in (a, b):
        assert verify_amd(id_pub, auth[ID_SIG], ours["id-block"])
        assert verify_amd(author_pub, auth[ID_KEY_SIG], auth[ID_KEY])
    # The firmware takes sev-snp-measure's ID block as it takes ours.
    firmware_launch(theirs["id-block"], theirs["id-auth"], auth_key_en=True)


def test_oracle_command_line_output(sp_emu: Any, keys: Any, digest: bytes) -> None:
    """Same lines, same order, as sev-snp-measure's ``snp-create-id-block`` prints."""
    exe = shutil.which("snp-create-id-block")
    if exe is None:
        pytest.skip("snp-create-id-block is not on PATH")
    b64 = base64.b64encode(digest).decode()
    proc = subprocess.run(
        [
            exe,
            "--measurement",
            b64,
            "--idkey",
            str(keys.id_key),
            "--authorkey",
            str(keys.author_key),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    run = sp_emu(
        "id-block", "--measurement", b64, "--id-key", keys.id_key, "--author-key", keys.author_key
    )
    theirs, ours = proc.stdout.splitlines(), run.out.splitlines()
    assert len(ours) == len(theirs) == 3
    assert ours[0].split(",")[0] == theirs[0].split(",")[0]  # id-block=... (deterministic)
    assert ours[0].split(",")[1].startswith("id-auth=") and theirs[0].split(",")[1].startswith(
        "id-auth="
    )
    assert ours[1:] == theirs[1:]


# --- what the firmware rejects -------------------------------------------------------------


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1
    return bytes(out)


def _put(data: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(data)
    out[offset : offset + len(value)] = value
    return bytes(out)


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


MUTATIONS: list[tuple[str, Callable[[bytes, bytes, Any], tuple[bytes, bytes]], bool, S]] = [
    ("changed digest", lambda b, a, k: (_flip(b, 0), a), True, S.BAD_MEASUREMENT),
    ("changed digest, last byte", lambda b, a, k: (_flip(b, 47), a), False, S.BAD_MEASUREMENT),
    ("changed policy", lambda b, a, k: (_flip(b, 0x58), a), True, S.POLICY_FAILURE),
    ("changed policy, high bit", lambda b, a, k: (_flip(b, 0x5F), a), False, S.POLICY_FAILURE),
    ("id key algo 2", lambda b, a, k: (b, _put(a, 0, _u32(2))), True, S.INVALID_PARAM),
    ("id key algo 0", lambda b, a, k: (b, _put(a, 0, _u32(0))), False, S.INVALID_PARAM),
    ("auth key algo 2", lambda b, a, k: (b, _put(a, 4, _u32(2))), True, S.INVALID_PARAM),
    ("family id changed after signing", lambda b, a, k: (_flip(b, 0x30), a), True, S.BAD_SIGNATURE),
    ("svn changed after signing", lambda b, a, k: (_flip(b, 0x54), a), True, S.BAD_SIGNATURE),
    ("flipped R byte", lambda b, a, k: (b, _flip(a, 0x40)), True, S.BAD_SIGNATURE),
    ("flipped S byte", lambda b, a, k: (b, _flip(a, 0x40 + 0x48 + 10)), False, S.BAD_SIGNATURE),
    ("R padding", lambda b, a, k: (b, _flip(a, 0x40 + 60)), True, S.BAD_SIGNATURE),
    ("zero signature", lambda b, a, k: (b, _put(a, 0x40, bytes(0x200))), True, S.BAD_SIGNATURE),
    (
        "wrong id key",
        lambda b, a, k: (b, _put(a, 0x240, amd_public(k.other_key))),
        False,
        S.BAD_SIGNATURE,
    ),
    ("id key curve 1 (P-256)", lambda b, a, k: (b, _put(a, 0x240, _u32(1))), True, S.BAD_SIGNATURE),
    ("id key curve 3", lambda b, a, k: (b, _put(a, 0x240, _u32(3))), True, S.BAD_SIGNATURE),
    ("id key off the curve", lambda b, a, k: (b, _flip(a, 0x244)), True, S.BAD_SIGNATURE),
    ("id key Y off the curve", lambda b, a, k: (b, _flip(a, 0x24C + 5)), False, S.BAD_SIGNATURE),
    (
        "id key point at zero",
        lambda b, a, k: (b, _put(a, 0x244, bytes(144))),
        True,
        S.BAD_SIGNATURE,
    ),
    ("author signature broken", lambda b, a, k: (b, _flip(a, 0x680)), True, S.BAD_SIGNATURE),
    ("author signature S broken", lambda b, a, k: (b, _flip(a, 0x6C8)), True, S.BAD_SIGNATURE),
    (
        "wrong author key",
        lambda b, a, k: (b, _put(a, 0x880, amd_public(k.other_key))),
        True,
        S.BAD_SIGNATURE,
    ),
    ("author key off the curve", lambda b, a, k: (b, _flip(a, 0x884)), True, S.BAD_SIGNATURE),
    ("author key curve 1", lambda b, a, k: (b, _put(a, 0x880, _u32(1))), True, S.BAD_SIGNATURE),
]


@pytest.mark.parametrize(
    ("mutate", "auth_key_en", "status"),
    [pytest.param(m, e, s, id=name) for name, m, e, s in MUTATIONS],
)
def test_launch_finish_rejects_altered(
    produced: Callable[..., dict[str, Any]],
    keys: Any,
    mutate: Callable[[bytes, bytes, Any], tuple[bytes, bytes]],
    auth_key_en: bool,
    status: S,
) -> None:
    made = produced()
    block, auth = mutate(made["block"], made["auth"], keys)
    assert (block, auth) != (made["block"], made["auth"])
    expect_status(block, auth, auth_key_en, status)


def test_off_curve_mutations_really_are_off_the_curve(
    produced: Callable[..., dict[str, Any]],
) -> None:
    auth = produced()["auth"]
    for offset in (0x244, 0x24C + 5):
        with pytest.raises(BadKey, match="not on P-384"):
            public_key_from_amd(_flip(auth, offset)[ID_KEY])


def test_id_block_for_another_policy_fails_the_policy_check(
    produced: Callable[..., dict[str, Any]],
) -> None:
    """A properly signed ID block for policy 0x70000 and a launch with 0x30000."""
    made = produced("--policy", "0x70000")
    assert IdBlock.from_bytes(made["block"]).policy == 0x70000
    expect_status(made["block"], made["auth"], True, S.POLICY_FAILURE)
    firmware_launch(made["block"], made["auth"], True, policy=0x70000)


def test_wrong_measurement_fails_the_digest_check(sp_emu: Any, keys: Any, tmp_path: Path) -> None:
    """An ID block for a 4-vCPU launch does not fit a 2-vCPU one."""
    run = sp_emu("id-block", "--launch", "--vcpus", "4", "--id-key", keys.id_key, "--out", tmp_path)
    assert run.code == 0
    block = (tmp_path / "id_block.bin").read_bytes()
    auth = (tmp_path / "id_auth.bin").read_bytes()
    expect_status(block, auth, False, S.BAD_MEASUREMENT)


# --- the library -------------------------------------------------------------------------


def test_library_round_trip_and_key_errors(keys: Any) -> None:
    block = IdBlock(ld=bytes(range(48)), guest_svn=3, policy=0x30000)
    assert IdBlock.from_bytes(block.to_bytes()) == block
    assert len(block.to_bytes()) == 0x60 and block.to_bytes()[0x50:0x54] == _u32(1)
    signed = sign_id_block(block, load_signing_key(keys.id_key.read_bytes()))
    assert signed.auth_key_en is False and len(signed.id_auth) == 0x1000
    for bad in (keys.rsa_key, keys.p256_key, keys.encrypted_key, keys.not_a_key):
        with pytest.raises(IdBlockError):
            load_signing_key(bad.read_bytes(), "k")
    with pytest.raises(IdBlockError):
        IdBlock(ld=bytes(47))
    with pytest.raises(IdBlockError):
        IdBlock.from_bytes(bytes(0x61))
