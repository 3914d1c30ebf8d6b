"""Forward+backward time and peak memory of the reward-shaped loss, against cross-entropy.

    python benchmarks/loss.py                # CPU rows; GPU rows too when CUDA is present
    python benchmarks/loss.py --quick        # small shapes: a smoke run
    python benchmarks/loss.py --device cuda  # GPU rows only

Every row runs beta=-0.25, lam_tail=-0.1, k=100 together (two of the paper's arms combined,
so every term of the loss is exercised), so the K_t
selection is part of the time. Baselines are measured in the same run: F.cross_entropy on
the same logits (for the linear rows: logits = hidden @ weight.T, then F.cross_entropy),
the same loss on materialised logits ("unfused"), and Liger-Kernel's cross-entropy and
fused linear cross-entropy when liger-kernel is installed and CUDA is present (on CPU
Liger only runs through the Triton interpreter, which says nothing about speed).

Time: median over --repeats runs after one warm-up; each run is forward + backward
from fresh leaf tensors, synchronised on CUDA. The implementations of a case take turns
within each repeat, so that load from other processes falls on all of them alike. On
CPU the process CPU time (all threads) is reported too: waiting for a busy core does not
count in it, so its ratios are steadier on a shared machine.
Peak memory, extra over the inputs (the inputs' gradients count: every path makes them):
  CUDA: torch.cuda.max_memory_allocated() during one run minus what was allocated before.
  CPU: torch's CPU allocator goes straight to malloc/mmap, which tracemalloc cannot see.
       Each (case, impl) runs once in a fresh subprocess that builds its inputs, resets the
       kernel's resident-set high-water mark (/proc/self/clear_refs), runs, and reports
       VmHWM - VmRSS from /proc/self/status: the resident memory added at the peak.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rsrl.objective.loss import fused_linear_reward_shaped_loss, reward_shaped_loss  # noqa: E402

SHAPED = dict(beta=-0.25, lam_tail=-0.1, k=100)
IGNORED_SHARE = 0.05  # targets set to ignore_index, as padding would be
MiB = 2**20


@dataclass(frozen=True)
class Case:
    n: int  # tokens
    vocab: int
    dim: int  # 0: the loss takes logits; else hidden [n, dim] and weight [vocab, dim]
    dtype: str
    device: str

    @property
    def label(self) -> str:
        head = f"D={self.dim} " if self.dim else ""
        return f"{self.device} N={self.n} V={self.vocab} {head}{self.dtype}"


def cases(device: str, quick: bool) -> list[Case]:
    if device == "cpu":
        n, big = (256, 1024) if quick else (2048, 8192)
        vocab = 4096 if quick else 32768
        return [Case(n, vocab, 0, "float32", "cpu"), Case(big, vocab, 512, "float32", "cpu")]
    n, vocab, dim = (1024, 32768, 1024) if quick else (16384, 151936, 4096)
    return [
        Case(n, vocab, 0, "bfloat16", "cuda"),
        Case(n, vocab, 0, "float32", "cuda"),
        Case(n, vocab, dim, "bfloat16", "cuda"),
    ]


def make_inputs(case: Case) -> dict[str, torch.Tensor]:
    gen = torch.Generator(device=case.device).manual_seed(0)
    dtype = getattr(torch, case.dtype)
    targets = torch.randint(0, case.vocab, (case.n,), generator=gen, device=case.device)
    ignored = torch.rand(case.n, generator=gen, device=case.device) < IGNORED_SHARE
    targets[ignored] = -100
    if not case.dim:
        logits = torch.randn(case.n, case.vocab, generator=gen, device=case.device) * 2
        return {"logits": logits.to(dtype), "targets": targets}
    hidden = torch.randn(case.n, case.dim, generator=gen, device=case.device)
    weight = torch.randn(case.vocab, case.dim, generator=gen, device=case.device)
    weight /= case.dim**0.5 / 2  # logits of about N(0, 4), as for the logits rows
    return {"hidden": hidden.to(dtype), "weight": weight.to(dtype), "targets": targets}


def _liger():
    try:
        from liger_kernel.transformers import functional
    except ImportError:
        return None
    return functional


def impls(case: Case) -> dict[str, Callable]:
    """name -> loss(**leaves, targets); baselines first."""
    liger = _liger() if case.device == "cuda" else None
    if not case.dim:
        out = {"F.cross_entropy": lambda logits, targets: F.cross_entropy(logits, targets)}
        if liger:
            out["liger CE"] = lambda logits, targets: liger.liger_cross_entropy(logits, targets)
        engines = ["reference"] + (["triton"] if case.device == "cuda" else [])
        for impl in engines:
            out[f"shaped {impl}"] = _shaped_logits(impl)
        return out
    out = {
        "unfused F.cross_entropy": lambda hidden, weight, targets: F.cross_entropy(
            hidden @ weight.T, targets
        )
    }
    if liger:
        out["liger fused linear CE"] = lambda hidden, weight, targets: (
            liger.liger_fused_linear_cross_entropy(hidden, weight, targets)
        )
    out["shaped unfused"] = lambda hidden, weight, targets: reward_shaped_loss(
        hidden @ weight.T, targets, **SHAPED
    )
    out["shaped fused linear"] = lambda hidden, weight, targets: fused_linear_reward_shaped_loss(
        hidden, weight, targets, **SHAPED
    )
    return out


def _shaped_logits(impl: str) -> Callable:
    return lambda logits, targets: reward_shaped_loss(logits, targets, impl=impl, **SHAPED)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_once(fn: Callable, inputs: dict[str, torch.Tensor]) -> None:
    leaves = {k: v.detach().requires_grad_() for k, v in inputs.items() if k != "targets"}
    fn(**leaves, targets=inputs["targets"]).backward()


def time_ms(
    fns: dict[str, Callable], inputs: dict[str, torch.Tensor], device: str, repeats: int
) -> dict[str, tuple[float, float]]:
    """Median wall and process-CPU milliseconds of each fn, taking turns in every repeat."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for fn in fns.values():
        run_once(fn, inputs)  # warm-up: compilation, allocator
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            run_once(fn, inputs)
            _sync(device)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: tuple(statistics.median(x) * 1e3 for x in zip(*t)) for name, t in times.items()}


def cuda_peak_bytes(fn: Callable, inputs: dict[str, torch.Tensor]) -> int:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run_once(fn, inputs)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def _proc_status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {
        k: int(re.search(rf"{k}:\s+(\d+) kB", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")
    }


def cpu_peak_bytes(case: Case, name: str, threads: int) -> int:
    """Runs the case once in a fresh process (see the module docstring)."""
    args = [
        sys.executable,
        __file__,
        "--child",
        json.dumps(asdict(case)),
        name,
        "--threads",
        str(threads),
    ]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def child(case_json: str, name: str) -> None:
    case = Case(**json.loads(case_json))
    inputs = make_inputs(case)
    fn = impls(case)[name]
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    base = _proc_status()["VmRSS"]
    run_once(fn, inputs)
    print(_proc_status()["VmHWM"] - base)


def copy_floor_ms(inputs: dict[str, torch.Tensor], device: str, repeats: int) -> float:
    """Reading every logit once and writing every gradient once, as a plain copy."""
    src = inputs["logits"]
    dst = torch.empty_like(src)
    copy = {"copy": lambda logits, targets: _CopyLoss.apply(logits, dst)}
    return time_ms(copy, {"logits": src, "targets": inputs["targets"]}, device, repeats)["copy"][0]


class _CopyLoss(torch.autograd.Function):
    """Copies the logits in forward (read + write of [N, V]); backward is free."""

    @staticmethod
    def forward(ctx, logits, dst):
        dst.copy_(logits)
        return logits.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        return None, None


@dataclass
class Row:
    case: Case
    name: str
    ms: float  # wall
    peak: int
    cpu_ms: float = 0.0


def measure(case: Case, repeats: int, threads: int) -> list[Row]:
    inputs = make_inputs(case)
    fns = impls(case)
    times = time_ms(fns, inputs, case.device, repeats)
    rows = []
    for name, fn in fns.items():
        peak = (
            cuda_peak_bytes(fn, inputs)
            if case.device == "cuda"
            else cpu_peak_bytes(case, name, threads)
        )
        wall, cpu = times[name]
        rows.append(Row(case, name, wall, peak, cpu))
        print(f"  {case.label:<40} {name:<24} {wall:9.1f} ms {peak / MiB:9.1f} MiB", flush=True)
    if case.device == "cuda" and not case.dim:
        floor = copy_floor_ms(inputs, case.device, repeats)
        rows.append(Row(case, "copy floor (read+write)", floor, 0))
    return rows


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:6.2f}x" if base else "     -"


def table(rows: list[Row]) -> str:
    """Markdown: each row against F.cross_entropy (the unfused CE path for linear rows),
    the unfused shaped loss (linear rows) and Liger where it ran."""
    lines = [
        "| case | impl | time ms | x CE | x unfused | x Liger | CPU time x CE | "
        "x unfused | peak extra MiB | x CE | x unfused | x Liger |",
        "|" + "---|" * 12,
    ]
    for case in dict.fromkeys(r.case for r in rows):
        mine = {r.name: r for r in rows if r.case == case}
        bases = [
            next((mine[n] for n in names if n in mine), None)
            for names in (
                ("F.cross_entropy", "unfused F.cross_entropy"),
                ("shaped unfused",),
                ("liger CE", "liger fused linear CE"),
            )
        ]
        for r in mine.values():
            t = " | ".join(_ratio(r.ms, b and b.ms) for b in bases)
            t += " | " + " | ".join(_ratio(r.cpu_ms, b and b.cpu_ms) for b in bases[:2])
            m = " | ".join(_ratio(r.peak, b and b.peak) for b in bases) if r.peak else "- | - | -"
            peak = f"{r.peak / MiB:.1f}" if r.peak else "-"
            lines.append(f"| {case.label} | {r.name} | {r.ms:.1f} | {t} | {peak} | {m} |")
    return "\n".join(lines)


def bandwidth(rows: list[Row]) -> list[str]:
    """Achieved bandwidth of the Triton loss against the floor: read logits + write grads once."""
    out = []
    for r in rows:
        if r.name == "shaped triton":
            floor_bytes = (
                2
                * r.case.n
                * r.case.vocab
                * torch.tensor([], dtype=getattr(torch, r.case.dtype)).element_size()
            )
            copy = next(c for c in rows if c.case == r.case and c.name.startswith("copy"))
            out.append(
                f"{r.case.label}: floor {floor_bytes / 2**30:.2f} GiB; shaped triton "
                f"{floor_bytes / r.ms / 1e6:.0f} GB/s effective, {r.ms / copy.ms:.2f}x "
                f"the time of a plain copy ({floor_bytes / copy.ms / 1e6:.0f} GB/s)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return child(*args.child)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"torch {torch.__version__}, {args.threads} CPU threads, load average {load}"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    rows = [
        row
        for d in devices
        for case in cases(d, args.quick)
        for row in measure(case, args.repeats, args.threads)
    ]
    print()
    print(table(rows))
    for line in bandwidth(rows):
        print(line)


if __name__ == "__main__":
    main()
