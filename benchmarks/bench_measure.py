"""Whole-process time of ``sp-emu measure`` against ``sev-snp-measure`` on the same input
(issue: Launch), start-up included, both measured in this run.

Run: ``python3 benchmarks/bench_measure.py [OVMF] [RUNS]`` (default Debian's OVMF.fd, 15
runs).  Both commands run with the same environment; Python's bytecode cache is enabled (as
in a normal install) even if the calling shell disables it.  The runs alternate between the
two commands, so a noisy machine slows both alike.  Prints min and median seconds and ours
as ratios of theirs; asserts only that the two digests agree.

Measure installed tools, as users run them: ``python3 -m venv v && v/bin/pip install .
sev-snp-measure``, then ``PATH=$PWD/v/bin:$PATH python3 benchmarks/bench_measure.py``.  An
editable install (``pip install -e``) adds an import hook that costs every command several
ms of start-up, and a shell's ``pyenv`` shims add tens of ms to both commands.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_OVMF = "/usr/share/ovmf/OVMF.fd"


def one_run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def digest_of(cmd: list[str], env: dict[str, str]) -> str:
    """The command's output (its first run also writes the bytecode caches)."""
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    ovmf = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OVMF
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 31
    if not Path(ovmf).is_file():
        print(f"{ovmf}: not found (apt-get install ovmf); nothing measured")
        return
    ssm = shutil.which("sev-snp-measure")
    ours = shutil.which("sp-emu")
    if ssm is None or ours is None:
        print("needs both sp-emu and sev-snp-measure on PATH (pip install . sev-snp-measure)")
        return
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    args = ["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--ovmf", ovmf]
    cmd_ssm, cmd_ours = [ssm, *args], [ours, "measure", *args]
    d_ssm, d_ours = digest_of(cmd_ssm, env), digest_of(cmd_ours, env)
    t_ssm: list[float] = []
    t_ours: list[float] = []
    for _ in range(runs):
        t_ssm.append(one_run(cmd_ssm, env))
        t_ours.append(one_run(cmd_ours, env))
    assert d_ours == d_ssm, f"digests differ: {d_ours} != {d_ssm}"
    for name, t in (("sev-snp-measure", t_ssm), ("sp-emu measure", t_ours)):
        print(f"{name:16} min {min(t):.4f} s  median {statistics.median(t):.4f} s  ({runs} runs)")
    median_ratio = statistics.median(t_ours) / statistics.median(t_ssm)
    min_ratio = min(t_ours) / min(t_ssm)
    print(f"digest {d_ours} (both)")
    print(
        f"sp-emu / sev-snp-measure: median time {median_ratio:.2f}, fastest run {min_ratio:.2f} "
        "(target <= 1.00; on a noisy machine the fastest runs are the steadier figure)"
    )


if __name__ == "__main__":
    main()
