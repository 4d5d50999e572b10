"""``sp-emu id-block``: build and sign an ID block and ID authentication page.

Output as sev-snp-measure's ``snp-create-id-block`` prints it: the QEMU ``sev-snp-guest``
properties ``id-block=<base64>,id-auth=<base64>``, then ``id_key_hash: <base64>`` and (with
an author key) ``author_key: <base64>``, the SHA-384 digests of the public keys.  With
``--out DIR`` the raw ``id_block.bin`` and ``id_auth.bin`` are written too (``sp-emu launch
--id-block ... --id-auth ...`` takes them).
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

from sp_emu.cli.common import Parser, UsageError, digest_bytes, hex_bytes, int_value, read_file
from sp_emu.cli.launch_args import (
    add_launch_arguments,
    launch_flags_given,
    run_spec,
    spec_from_args,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

ID_BLOCK_FILE = "id_block.bin"
ID_AUTH_FILE = "id_auth.bin"


def register(sub: Any) -> None:
    p: Parser = sub.add_parser(
        "id-block",
        help="build and sign an ID block for LAUNCH_FINISH",
        description="Build an ID block (version 1) for a launch digest and sign it with a "
        "P-384 ID key (and optionally an author key), as sev-snp-measure's "
        "snp-create-id-block does.  The digest comes from --measurement, or from "
        "launching the guest the image/vCPU flags describe (--launch), as 'sp-emu launch' "
        "launches it (in snp:svsm mode with KVM's VMSAs, not sev-snp-measure's).",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--measurement", metavar="DIGEST", help="the launch digest (hex, or base64)")
    what.add_argument(
        "--launch",
        action="store_true",
        help="measure the guest given by the image/vCPU flags on the emulated firmware",
    )
    p.add_argument("--id-key", metavar="PEM", required=True, help="ID key (P-384 private, PEM)")
    p.add_argument("--author-key", metavar="PEM", help="author key (P-384 private, PEM)")
    p.add_argument(
        "--policy", metavar="VALUE", type=int_value, default=None, help="guest policy (0x30000)"
    )
    p.add_argument("--family-id", metavar="HEX", help="FAMILY_ID, 16 bytes in hex (zeros)")
    p.add_argument("--image-id", metavar="HEX", help="IMAGE_ID, 16 bytes in hex (zeros)")
    p.add_argument("--svn", metavar="N", type=int_value, default=0, help="GUEST_SVN (0)")
    p.add_argument(
        "--out", metavar="DIR", help=f"also write {ID_BLOCK_FILE} and {ID_AUTH_FILE} into DIR"
    )
    p.add_argument("--json", action="store_true", help="print a JSON object instead")
    add_launch_arguments(p, modes=("snp", "snp:svsm"))
    p.set_defaults(func=run)


def _launch_digest(args: argparse.Namespace, policy: int) -> bytes:
    if not args.launch:
        given = launch_flags_given(args)
        if given:
            raise UsageError(f"{', '.join(given)}: image and vCPU flags need --launch")
        return digest_bytes(args.measurement, "--measurement")
    inputs = spec_from_args(args, modes=("snp", "snp:svsm"), policy=policy)
    return run_spec(inputs).digest


def _write(directory: str, name: str, data: bytes) -> Path:
    path = Path(directory) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as err:
        raise UsageError(f"--out {directory}: {err.strerror}") from None
    return path


def run(args: argparse.Namespace, out: TextIO) -> int:
    from sp_emu.idblock import (
        DEFAULT_ID_POLICY,
        IdBlock,
        IdBlockError,
        load_signing_key,
        sign_id_block,
    )

    policy = DEFAULT_ID_POLICY if args.policy is None else args.policy
    family = bytes(16) if args.family_id is None else hex_bytes(args.family_id, 16, "--family-id")
    image = bytes(16) if args.image_id is None else hex_bytes(args.image_id, 16, "--image-id")
    try:
        id_key = load_signing_key(read_file(args.id_key, "--id-key"), f"--id-key {args.id_key}")
        author_key = None
        if args.author_key is not None:
            author_key = load_signing_key(
                read_file(args.author_key, "--author-key"), f"--author-key {args.author_key}"
            )
        ld = _launch_digest(args, policy)
        block = IdBlock(ld=ld, family_id=family, image_id=image, guest_svn=args.svn, policy=policy)
        signed = sign_id_block(block, id_key, author_key)
    except IdBlockError as err:
        raise UsageError(str(err)) from None
    files: list[str] = []
    if args.out is not None:
        files.append(str(_write(args.out, ID_BLOCK_FILE, signed.id_block)))
        files.append(str(_write(args.out, ID_AUTH_FILE, signed.id_auth)))
    if args.json:
        author = signed.author_key_digest
        obj = {
            "measurement": ld.hex(),
            "policy": f"{policy:#x}",
            "family_id": family.hex(),
            "image_id": image.hex(),
            "guest_svn": args.svn,
            "id_block": base64.b64encode(signed.id_block).decode(),
            "id_auth": base64.b64encode(signed.id_auth).decode(),
            "id_key_digest": signed.id_key_digest.hex(),
            "author_key_digest": None if author is None else author.hex(),
            "auth_key_en": signed.auth_key_en,
            "files": files,
        }
        import json

        out.write(json.dumps(obj, indent=1) + "\n")
        return 0
    out.write(signed.snp_create_id_block_text() + "\n")
    return 0
