"""The isolated measuring workers: ``python -m lts.cost.worker --role memory|latency|both``.

A :class:`lts.cost.measure.Measurer` keeps long-lived workers that import torch once (a fresh
process per candidate would spend 1-2 s of the 2.4 s budget on the import), fix their thread
count, warm up, then answer one JSON request per line on stdin with one JSON reply per line.
Replies go to a private duplicate of the original stdout; fd 1 itself is pointed at stderr, so a
stray ``print`` in a library cannot corrupt the reply stream.

On CPU there are two workers, because the two figures want opposite things from the allocator:

* the **memory** worker wants the resident set to follow the live tensors, so that a forward's
  peak does not depend on what earlier candidates left in the heap. It sets glibc's ``mmap``
  threshold to a fixed 16 KiB: every block that size or larger gets its own mapping and is
  unmapped when freed (the default, adaptive threshold moved the same forward's peak by up to
  30% from one candidate to the next);
* the **latency** worker wants the timed forwards to recycle their activation buffers instead of
  mapping and page-faulting tens of MB in afresh on every call (that was the largest latency noise
  measured here, up to x2 for output-bound models in this VM). It turns ``mmap`` off, so blocks
  come from the heap and stay there when freed. After a few candidates that heap is fragmented,
  which is why memory is not measured in the same process.

Memory worker (``MKL_DISABLE_FAST_MM=1``: MKL's pool of GEMM scratch buffers only ever grows,
so without it a forward's scratch is allocated, and counted, inside that forward), per candidate:

1. ``gc.collect()`` and ``malloc_trim(0)``, then read the baseline ``VmRSS`` (the collection is
   quick: everything alive after start-up is frozen with ``gc.freeze()`` and not walked again).
2. Build the model with a repeated seeded block of weights (``build_model(init=False)``: the
   same resident pages and the same allocations in a forward as the seeded init, at a fraction of
   its cost); with the ``onnxruntime`` backend, export it, create the ONNX Runtime session and drop
   the torch model (:mod:`lts.models.onnx_export`: the session's own copy of the weights is what it runs);
   collect and trim again: ``weights_memory_mb`` is the growth.
3. Read ``VmRSS``, reset the kernel's peak-RSS mark (write ``5`` to ``/proc/self/clear_refs``,
   Linux >= 4.0: ``VmHWM`` := ``VmRSS``), run one forward, read ``VmHWM``.
   ``peak_memory_mb`` = weights + (``VmHWM`` - ``VmRSS`` before the forward): the resident memory
   needed to hold the model and run one forward (activations, the output log-probs,
   Transformer-XL's memory, allocator overhead). One-time, process-wide costs (thread pools,
   kernel tables) are paid by a tiny model when the worker starts and are not counted. Measured
   here: the same architecture's peak agrees to within 1% whatever was measured before it.

Latency worker, per candidate: build (``init=False`` too: normal(0, 0.02) values, so the kernels
run on the same kind of numbers as with the seeded init), ``warmup`` untimed forwards (at least
one: it fills the heap the timed forwards recycle), then timed forwards (garbage collector off) until the stopping
rule of :mod:`lts.cost.protocol` is met. Each forward is timed by the wall clock
(``perf_counter``) and by the thread's CPU time (``thread_time``); the protocol's clock says which
one is the latency. With ``prepare`` / ``time`` requests the build and warm-up run while the memory
worker measures (and the first timed forward or so, see :mod:`lts.cost.measure`).

On CUDA one worker (``--role both``) does both: the caching allocator's counters are exact tensor
bytes and do not depend on history. ``memory_allocated()`` before the build is the baseline;
``reset_peak_memory_stats()`` before the memory forward; ``max_memory_allocated()`` after it.
Forwards are timed between ``torch.cuda.synchronize()`` calls (wall clock).

A guard keeps one huge candidate from taking the machine down (or getting the OOM killer to pick
another process): on CPU the soft ``RLIMIT_DATA`` is lowered for the duration of the candidate, to
the current data size plus the larger of twice the caller's memory limit and the limit + 512 MB
(or 90% of the memory available when there is no limit), so an oversized allocation fails as a ``RuntimeError``/``MemoryError`` that is
recorded as infeasible. Whatever kills a worker outright (SIGKILL, a segfault) is the parent's
job: it notices the closed pipe and starts a new worker.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import gc
import json
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

_MB = 2**20
ROLES = ("memory", "latency", "both")


# -- memory probes ----------------------------------------------------------------------------
def _proc_kb(path: str, field: str) -> int | None:
    try:
        with open(path) as f:
            m = re.search(rf"^{field}:\s+(\d+)\s*kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _status_kb(field: str) -> int | None:
    return _proc_kb("/proc/self/status", field)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_MMAP_THRESHOLD = 16 * 1024


class CpuMemory:
    """Resident-set figures of this process (MiB), with glibc's allocator set for ``role``."""

    def __init__(self, role: str) -> None:
        try:
            self._libc: Any = ctypes.CDLL("libc.so.6")
            self._libc.malloc_trim
            self._libc.mallopt
        except (OSError, AttributeError):  # not glibc: nothing to tune or trim
            self._libc = None
        if self._libc is not None:
            # A fixed trim threshold (any mallopt, in fact) also ends glibc's adaptive threshold.
            self._libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
            if role == "latency":
                self._libc.mallopt(_M_MMAP_MAX, 0)
            else:
                self._libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        self.peak_reset_ok = self._check_reset()

    def _check_reset(self) -> bool:
        if _status_kb("VmHWM") is None:
            return False
        try:
            self.reset_peak()
        except OSError:
            return False
        # After a reset the high-water mark must equal the current RSS (within a page or two).
        hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
        return hwm is not None and rss is not None and hwm - rss < 64

    def settle(self) -> None:
        """Collect garbage and hand free heap pages back, so the resident set is live memory."""
        gc.collect()
        if self._libc is not None:
            self._libc.malloc_trim(0)

    def rss(self) -> float:
        kb = _status_kb("VmRSS")
        return self._maxrss() if kb is None else kb / 1024

    def hwm(self) -> float:
        kb = _status_kb("VmHWM")
        return self._maxrss() if kb is None else kb / 1024

    @staticmethod
    def _maxrss() -> float:
        import resource

        scale = 1024 if sys.platform != "darwin" else 1  # KiB on Linux, bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / _MB

    @staticmethod
    def reset_peak() -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


@contextlib.contextmanager
def data_limit(extra_bytes: float | None) -> Iterator[None]:
    """Lower the soft RLIMIT_DATA to the current data size + ``extra_bytes`` for the block."""
    try:
        import resource
    except ImportError:  # not POSIX
        yield
        return
    data_kb = _status_kb("VmData")
    if extra_bytes is None or data_kb is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    want = int(data_kb * 1024 + extra_bytes)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (want, hard))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def guard_bytes(memory_limit_mb: float | None) -> float | None:
    if memory_limit_mb is not None:
        return max(2 * memory_limit_mb, memory_limit_mb + 512) * _MB
    avail = _proc_kb("/proc/meminfo", "MemAvailable")
    return None if avail is None else 0.9 * avail * 1024


# -- one candidate ----------------------------------------------------------------------------
def _timed_loop(fwd: Callable[[], Any], sync: Callable[[], None], proto: Any,
                keep: list[Any] | None = None) -> tuple[list[float], list[float]]:
    """Wall-clock and thread-CPU seconds of each timed forward; the protocol's clock decides when to stop.
    ``keep``: where each call's return value goes (a generation returns its step times)."""
    from lts.cost.stats import ci_within

    walls: list[float] = []
    cpus: list[float] = []
    stop_on = cpus if proto.clock == "cpu" else walls
    start = time.perf_counter()
    gc.disable()  # a collection in the middle of a forward is noise, not the model's cost
    try:
        while True:
            sync()
            c0, t0 = time.thread_time(), time.perf_counter()
            out = fwd()
            sync()
            t1, c1 = time.perf_counter(), time.thread_time()
            walls.append(t1 - t0)
            cpus.append(c1 - c0)
            if keep is not None:
                keep.append(out)
            del out
            n = len(walls)
            if n < proto.min_repeats:
                continue
            if ci_within(stop_on, proto.rel_ci) or n >= proto.max_repeats:
                break
            if time.perf_counter() - start >= proto.max_seconds:
                break
    finally:
        gc.enable()
    return walls, cpus


class Handler:
    """Answers requests for one worker role; holds a prepared model between requests.

    Tasks: ``memory`` (build, peak memory), ``prepare`` (build and warm up, keep the model),
    ``time`` (time the prepared model, then drop it), ``discard`` (drop it), ``latency``
    (prepare + time) and ``both`` (memory, then latency on the same model; CUDA).
    """

    def __init__(self, role: str, mem: CpuMemory | None) -> None:
        self.role = role
        self.mem = mem
        self.held: dict[str, Any] | None = None

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        task = req.get("task", self.role)
        if task == "discard":
            self.held = None
            return {}
        if task == "time":
            if self.held is None:
                raise RuntimeError("nothing prepared to time")
            held, self.held = self.held, None
            return self._time(held)
        self.held = None  # a new candidate replaces whatever was held
        out: dict[str, Any] = {}
        with self._guard(req):
            held = self._build(req, out, measure_weights=task in ("memory", "both"))
            if task in ("memory", "both"):
                self._memory(held, out)
            if task in ("prepare", "latency", "both"):
                self._warm(held, out)
        if task == "prepare":
            self.held = held
            return out
        if task in ("latency", "both"):
            out.update(self._time(held))
        return out

    @contextlib.contextmanager
    def _guard(self, req: dict[str, Any]) -> Iterator[None]:
        if self.mem is None:  # CUDA: the driver maps huge virtual ranges, RLIMIT_DATA would bite
            yield
            return
        with data_limit(guard_bytes(req.get("memory_limit_mb"))):
            yield

    def _build(self, req: dict[str, Any], out: dict[str, Any], measure_weights: bool) -> dict[str, Any]:
        import torch

        from lts.cost.protocol import Protocol
        from lts.models import build_model
        from lts.space.config import TransXLConfig, config_from_dict

        cfg = config_from_dict(req["config"])
        proto = Protocol.from_dict(req["protocol"])
        fault = req.get("fault")
        cuda = proto.kind == "cuda"
        dev = "cuda" if cuda else "cpu"
        batch, seq = proto.batch, proto.seq_len_for(cfg)
        sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
        mem = self.mem

        gen = torch.Generator().manual_seed(0)  # the same tokens for every candidate and run
        idx = torch.randint(cfg.vocab_size, (batch, seq), generator=gen).to(dev)
        base = 0.0
        if measure_weights:
            if cuda:
                gc.collect()
                torch.cuda.empty_cache()
                sync()
                base = torch.cuda.memory_allocated() / _MB
            else:
                assert mem is not None
                mem.settle()
                base = mem.rss()
        t0 = time.perf_counter()
        # Timing and memory need the pages, shapes and kind of values, not the seeded draws: a
        # repeated seeded block (build_model(init=False)) builds at copy speed.
        model = build_model(cfg, device=dev, init=False).eval()
        if proto.quant == "int8":
            from lts.models.quantize import quantize_int8

            quantize_int8(model)
        xl = isinstance(cfg, TransXLConfig)
        if xl and proto.workload == "forward":
            with torch.inference_mode():
                mems = model.init_mems(batch, cfg.mem_len)  # steady state: a full memory
        fwd: Callable[[], Any] | None = None
        if proto.backend == "onnxruntime":
            from lts.models.onnx_export import export_onnx, ort_runner

            with tempfile.TemporaryDirectory(prefix="lts-onnx-") as tmp:
                path = os.path.join(tmp, "model.onnx")
                feeds = export_onnx(model, idx, mems if xl else None, path)
                model = None
                if measure_weights:  # what the exporter leaves behind is not the session's
                    mem.settle()
                    base = mem.rss()
                fwd = ort_runner(path, feeds, proto.threads)
        sync()
        out[f"{self.role}_build_s"] = time.perf_counter() - t0
        weights_mb = None
        if measure_weights:
            if cuda:
                weights_mb = torch.cuda.memory_allocated() / _MB - base
            else:
                mem.settle()  # the seeded init's temporaries are not part of running the model
                weights_mb = mem.rss() - base

        if fault == "sigkill":  # test hook: die the way the OOM killer kills
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "hang":  # test hook: the per-candidate timeout
            time.sleep(3600)
        if fault == "raise":
            raise RuntimeError("injected fault")

        if fwd is None and proto.workload == "generate":
            fwd = _generation(model, cfg, proto, dev, sync)
        elif fwd is None:
            fwd = (lambda: model(idx, mems=mems)[0]) if xl else (lambda: model(idx))
        return {"fwd": fwd, "sync": sync, "proto": proto, "cuda": cuda, "base": base,
                "weights_mb": weights_mb, "model": model}

    def _memory(self, held: dict[str, Any], out: dict[str, Any]) -> None:
        import torch

        fwd, sync, mem = held["fwd"], held["sync"], self.mem
        weights_mb = held["weights_mb"]
        t1 = time.perf_counter()
        with torch.inference_mode():
            if held["cuda"]:
                before = torch.cuda.memory_allocated() / _MB
                torch.cuda.reset_peak_memory_stats()
                y = fwd()
                sync()
                fwd_mb = torch.cuda.max_memory_allocated() / _MB - before
            elif mem.peak_reset_ok:
                mem.settle()
                before = mem.rss()
                mem.reset_peak()
                y = fwd()
                fwd_mb = mem.hwm() - before
            else:  # a fresh process: its whole high-water mark, build included (upper bound)
                y = fwd()
                fwd_mb = mem.hwm() - held["base"] - weights_mb
            del y
        out.update(peak_memory_mb=weights_mb + fwd_mb, weights_memory_mb=weights_mb,
                   memory_s=time.perf_counter() - t1)

    def _warm(self, held: dict[str, Any], out: dict[str, Any]) -> None:
        import torch

        t2 = time.perf_counter()
        with torch.inference_mode():
            for _ in range(held["proto"].warmup):
                y = held["fwd"]()
                del y
            held["sync"]()
        out["warmup_s"] = time.perf_counter() - t2

    def _time(self, held: dict[str, Any]) -> dict[str, Any]:
        import torch

        from lts.cost.stats import ci_within, cv, median_ci

        t3 = time.perf_counter()
        proto = held["proto"]
        steps: list[Any] = []
        with torch.inference_mode():
            walls, cpus = _timed_loop(held["fwd"], held["sync"], proto,
                                      steps if proto.workload == "generate" else None)
        wall_ms = [t * 1000 for t in walls]
        cpu_ms = [t * 1000 for t in cpus]
        ms = cpu_ms if proto.clock == "cpu" else wall_ms
        med, lo, hi = median_ci(ms)
        gen = _generation_figures(steps, proto.clock == "cpu") if steps else {}
        return {**gen, "latency_ms": med, "latency_cv": cv(ms), "repeats": len(ms), "ci_ms": [lo, hi],
                "converged": ci_within(ms, proto.rel_ci), "timing_s": time.perf_counter() - t3,
                "wall_ms": median_ci(wall_ms)[0], "wall_cv": cv(wall_ms),
                # the host thread's CPU time says nothing about a GPU's work
                "cpu_ms": None if held["cuda"] else median_ci(cpu_ms)[0],
                "cpu_cv": None if held["cuda"] else cv(cpu_ms),
                "samples_ms": [round(t, 4) for t in ms]}


def _generation(model: Any, cfg: Any, proto: Any, dev: str, sync: Callable[[], None]) -> Callable[[], Any]:
    """One generation: prefill ``prompt_len`` tokens, then ``new_tokens`` single-token steps with the
    KV cache (GPT-2) or the recurrence memory (Transformer-XL, starting empty); every step computes
    the last position's log-probs. The call returns ``(prefill, steps)``, each ``(wall_s, cpu_s)``."""
    import torch

    from lts.space.config import TransXLConfig

    P, N, B = proto.prompt_len, proto.new_tokens, proto.batch
    if not isinstance(cfg, TransXLConfig) and P + N > cfg.tgt_len:
        raise ValueError(f"generating needs prompt_len + new_tokens = {P + N} positions; this GPT-2 learns "
                         f"tgt_len={cfg.tgt_len}")
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(cfg.vocab_size, (B, P), generator=gen).to(dev)
    new = torch.randint(cfg.vocab_size, (B, N), generator=gen).to(dev)
    xl = isinstance(cfg, TransXLConfig)
    if not xl:
        from transformers import DynamicCache

    def step(idx: torch.Tensor, state: Any) -> tuple[Any, tuple[float, float]]:
        c0, t0 = time.thread_time(), time.perf_counter()
        if xl:
            h, state = model.hidden(idx, state)
        else:
            h = model.hidden(idx, cache=state)
        y = model.crit.log_prob(h[:, -1])
        sync()
        del y
        return state, (time.perf_counter() - t0, time.thread_time() - c0)

    def run() -> tuple[tuple[float, float], list[tuple[float, float]]]:
        state = model.init_mems(B, 0) if xl else DynamicCache()
        state, prefill = step(prompt, state)
        steps = []
        for j in range(N):
            state, t = step(new[:, j:j + 1], state)
            steps.append(t)
        return prefill, steps

    return run


def _generation_figures(runs: list[Any], cpu_clock: bool) -> dict[str, Any]:
    """Median prefill, median and p90 decode step (ms) over every step of ``runs``, decode tokens/s."""
    from statistics import median, quantiles

    k = 1 if cpu_clock else 0
    prefill = [r[0][k] * 1000 for r in runs]
    steps = [t[k] * 1000 for r in runs for t in r[1]]
    decode = median(steps)
    p90 = quantiles(steps, n=10)[-1] if len(steps) > 1 else decode
    return {"prefill_ms": median(prefill), "decode_ms_per_token": decode, "decode_p90_ms": p90,
            "tokens_per_s": 1000.0 / decode if decode > 0 else None}


def one_line_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    low = text.lower()
    oom = isinstance(exc, MemoryError) or "out of memory" in low or "can't allocate memory" in low
    m = re.search(r"you tried to allocate (\d+) bytes", text)
    if oom:
        detail = f"allocating {int(m.group(1)) / _MB:.0f} MB failed" if m else (text or type(exc).__name__)
        reason = f"out of memory: {detail}"
    else:
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:300]


# -- the loop ---------------------------------------------------------------------------------
def _warm_up(kind: str) -> None:
    """Pay one-time costs (kernel dispatch, thread pools, lazy inits) before the first baseline."""
    import torch

    from lts.models import build_model
    from lts.space.config import GPT2Config, TransXLConfig

    dev = "cuda" if kind == "cuda" else "cpu"
    small = dict(n_layer=1, d_model=16, d_embed=16, n_head=2, d_inner=32, vocab_size=300, tgt_len=8)
    with torch.inference_mode():
        for cfg in (GPT2Config(cutoffs=(100,), tie_projs=(False, True), **small),
                    TransXLConfig(cutoffs=(100,), tie_projs=(False, True), mem_len=4, **small)):
            model = build_model(cfg, device=dev).eval()
            idx = torch.zeros(1, 8, dtype=torch.long, device=dev)
            if isinstance(cfg, TransXLConfig):
                model(idx, mems=model.init_mems(1, 4))
            else:
                model(idx)
            del model
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lts.cost.worker")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--kind", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--role", choices=ROLES, default="both")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--parent-pid", type=int, help="exit as soon as this process is gone (kill -9 included)")
    args = ap.parse_args(argv)
    if args.parent_pid:
        from lts.lifetime import exit_with_parent

        exit_with_parent(args.parent_pid)
    # A worker started from a Ray task inherits Ray's worker niceness (15 by default): timed at that
    # priority, every other process on the device comes first. Back to 0 where allowed (root, or a
    # node started with RAY_worker_niceness=0); the ready reply says what it runs at.
    if os.nice(0) > 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, 0)

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    faulthandler.enable()

    def send(obj: dict[str, Any]) -> None:
        reply.write(json.dumps(obj) + "\n")
        reply.flush()

    try:
        mem = None if args.kind == "cuda" else CpuMemory(args.role)  # before torch allocates
        import torch

        torch.set_num_threads(args.threads)
        with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
            torch.set_num_interop_threads(1)
        if args.kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        if not args.no_warmup:
            _warm_up(args.kind)
        # Everything alive now (torch's modules, the warm-up's leftovers) lives as long as the
        # worker: frozen, a full collection no longer walks it. Measured here: gc.collect() fell
        # from 0.13-0.15 s to microseconds, and the memory worker collects three times a candidate.
        gc.collect()
        gc.freeze()
    except Exception as exc:
        send({"ready": False, "error": one_line_reason(exc)})
        return 1
    send({
        "ready": True,
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
        "peak_reset": True if mem is None else mem.peak_reset_ok,
        "niceness": os.nice(0),
    })
    handler = Handler(args.role, mem)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            res = {"ok": True, **handler.handle(json.loads(line))}
        except (Exception, MemoryError) as exc:
            handler.held = None
            res = {"ok": False, "error": one_line_reason(exc)}
            if args.kind == "cuda":
                with contextlib.suppress(Exception):
                    gc.collect()
                    torch.cuda.empty_cache()
        send(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
