"""The measurement protocol: what is timed (workload, input shape, backend, device kind, threads, clock).

Defaults follow LTS: batch 1 and a segment of the config's ``tgt_len`` tokens (``seq_len=None``);
Transformer-XL is timed in the steady state, with a full memory of ``mem_len`` steps. Inputs are
the same seeded random tokens for every candidate.

Workloads: ``forward`` (above) times one forward over ``(batch, seq_len)``, the output log-probs of
every position included. ``generate`` times what a deployed language model does: a prefill of a
``prompt_len``-token prompt, then ``new_tokens`` decode steps of one token each, with GPT-2's KV
cache or Transformer-XL's recurrence memory (starting empty, growing to ``mem_len``); each step
computes the next-token log-probs of the last position only. One timed repeat is one whole
generation (its elapsed or CPU time is the latency the stopping rule reads); the figures are the
median prefill, the median and p90 decode step over every step of every repeat, and decode
throughput ``tokens_per_s`` = 1000 / median decode step. Peak memory covers one whole generation,
the cache included. Tokens are seeded random ids (what is generated does not change the cost).

Quantization: ``quant="int8"`` times and measures the model with its decoder's ``nn.Linear`` layers
dynamically quantized to int8 (:mod:`lts.models.quantize`; embedding and softmax stay fp32). What
that does to a trained model's perplexity is not measured by the protocol: validate it.

``key`` names only what changes the measured value -- backend, kind, batch, seq_len, threads and
(when it is not the default for the kind and threads) the clock, e.g. ``torch-cpu-b1-sdefault-t1``
-- so that a store can cache a measurement by (arch_id, device_id, protocol key). The stopping
rule (``rel_ci``, repeats, time cap, warm-up) changes how precisely the value is known, not what
it is, and stays out of the key.

Stopping rule (:mod:`lts.cost.stats`): after ``warmup`` untimed forwards, time forwards until at
least ``min_repeats`` are in and the distribution-free 95% confidence interval of the median lies
within ``+-rel_ci`` of the median (with fewer than 6 samples: all of them do), or ``max_repeats``
forwards are in, or ``max_seconds`` of timing have passed (checked once ``min_repeats`` are in).
The latency is the median; its spread is the CV (standard deviation / mean) of the timed forwards.

Threads: one by default, because on a shared 2-core machine a second intra-op thread makes
every forward wait for whichever core is busiest. Measured here with other jobs running (load
average 3-6): with 2 threads the benchmark's forwards took 5-14x as long as with one, its ranking
tau fell to 0.64 and a measurement took 10 s; with 1 thread, tau 0.87-0.96 at 1.5-2.1 s.

Clock: with one CPU thread, the default ``"cpu"`` clock times each forward by the CPU time of the
thread that runs it (``time.thread_time``), which is the forward's latency on an otherwise idle
core but does not count the time the thread spends preempted by other processes. In six
benchmark runs on a busy machine (load average 2.7-5.2 on 2 cores) it gave median CVs of 1.2-2.0%
and ranking taus of 0.87-0.96, where elapsed time in the same runs gave 2.4-13% and 0.83-0.96.
Both are recorded; ``clock="wall"`` makes elapsed time (``perf_counter``) the latency. More than
one thread and CUDA always use the wall clock (on CUDA between ``torch.cuda.synchronize()`` calls).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from lts.errors import LtsError

# Seconds one candidate's measurement may take before it counts as timed out (lts measure, search,
# re-measure, on this host or a Ray node: one default).
CANDIDATE_TIMEOUT_S = 120.0

DEFAULT_THREADS = 1
BACKENDS = ("torch", "onnxruntime")  # onnxruntime: lts.models.onnx_export (CPU, the forward workload)
CLOCKS = ("wall", "cpu")
WORKLOADS = ("forward", "generate")
QUANTS = ("none", "int8")
# what the generate workload measures beyond latency and memory (a Measurement's fields, stored columns)
GENERATION_FIELDS = ("prefill_ms", "decode_ms_per_token", "decode_p90_ms", "tokens_per_s")


def _pos_int(name: str, v: Any) -> None:
    from lts.space.config import LIMITS

    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise LtsError(f"protocol {name} must be a positive integer, got {v!r}")
    if name in LIMITS and v > LIMITS[name]:
        raise LtsError(f"protocol {name} must be at most {LIMITS[name]:,}, got {v:,}")


@dataclass(frozen=True)
class Protocol:
    batch: int = 1
    seq_len: int | None = None  # None -> the config's tgt_len
    backend: str = "torch"
    kind: str = "cpu"  # "cpu" or "cuda"
    threads: int = DEFAULT_THREADS
    rel_ci: float = 0.03  # stop when the 95% CI of the median is within +-3% of it
    max_seconds: float = 0.5  # cap on the timed loop (checked once min_repeats are in)
    min_repeats: int = 3
    max_repeats: int = 50
    warmup: int = 1  # untimed forwards before the timed ones (they also fill the heap those recycle)
    clock: str | None = None  # "wall" or "cpu"; None: "cpu" for one CPU thread, else "wall"
    workload: str = "forward"  # or "generate": prefill + per-token decode (see the module docstring)
    prompt_len: int = 64  # generate: prompt tokens
    new_tokens: int = 32  # generate: decode steps
    quant: str = "none"  # or "int8": the decoder's Linear layers dynamically quantized (lts.models.quantize)

    def __post_init__(self) -> None:
        _pos_int("batch", self.batch)
        if self.workload not in WORKLOADS:
            raise LtsError(f"protocol workload must be one of {list(WORKLOADS)}, got {self.workload!r}")
        if self.quant not in QUANTS:
            raise LtsError(f"protocol quant must be one of {list(QUANTS)}, got {self.quant!r}")
        if self.quant == "int8" and self.kind != "cpu":
            raise LtsError("int8 is PyTorch's dynamic quantization, which runs on CPU only: use kind 'cpu'")
        _pos_int("prompt_len", self.prompt_len)
        _pos_int("new_tokens", self.new_tokens)
        if self.workload == "generate" and self.seq_len is not None:
            raise LtsError("protocol seq_len is for the forward workload; generate takes prompt_len and new_tokens")
        if self.seq_len is not None:
            _pos_int("seq_len", self.seq_len)
        if self.backend not in BACKENDS:
            raise LtsError(f"backend {self.backend!r} is not available (choose from {list(BACKENDS)})")
        if self.backend == "onnxruntime":
            if self.kind != "cpu":
                raise LtsError("the onnxruntime backend runs ONNX Runtime's CPU provider: use kind 'cpu'")
            if self.workload != "forward":
                raise LtsError("the onnxruntime backend times the forward workload; generate runs on torch")
            if self.quant != "none":
                raise LtsError("int8 is PyTorch's dynamic quantization: use it with backend torch")
            missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
            if missing:
                raise LtsError(f"the onnxruntime backend needs {' and '.join(missing)}: "
                               "pip install -c requirements.txt onnx onnxruntime (or the 'ort' extra)")
        if self.kind not in ("cpu", "cuda"):
            raise LtsError(f"protocol kind must be 'cpu' or 'cuda', got {self.kind!r}")
        _pos_int("threads", self.threads)
        _pos_int("min_repeats", self.min_repeats)
        _pos_int("max_repeats", self.max_repeats)
        _pos_int("warmup", self.warmup)
        if self.max_repeats < self.min_repeats:
            raise LtsError(f"protocol max_repeats={self.max_repeats} is below min_repeats={self.min_repeats}")
        if self.clock is None:
            object.__setattr__(self, "clock", self.default_clock)
        if self.clock not in CLOCKS:
            raise LtsError(f"protocol clock must be one of {list(CLOCKS)}, got {self.clock!r}")
        if self.clock == "cpu" and (self.kind != "cpu" or self.threads != 1):
            raise LtsError("clock 'cpu' times a single CPU thread: it needs kind 'cpu' and threads 1")
        if not (isinstance(self.rel_ci, (int, float)) and 0 < self.rel_ci < 1):
            raise LtsError(f"protocol rel_ci must lie in (0, 1), got {self.rel_ci!r}")
        if not (isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0):
            raise LtsError(f"protocol max_seconds must be positive, got {self.max_seconds!r}")

    @property
    def key(self) -> str:
        """Stable, readable cache key, e.g. ``torch-cpu-b1-sdefault-t1`` or, generating 32 tokens after
        a 64-token prompt, ``torch-cpu-b1-g64+32-t1``."""
        if self.workload == "generate":
            shape = f"g{self.prompt_len}+{self.new_tokens}"
        else:
            shape = "s" + ("default" if self.seq_len is None else str(self.seq_len))
        clock = "" if self.clock == self.default_clock else f"-{self.clock}"
        quant = "" if self.quant == "none" else f"-{self.quant}"
        return f"{self.backend}-{self.kind}-b{self.batch}-{shape}-t{self.threads}{clock}{quant}"

    @property
    def default_clock(self) -> str:
        return "cpu" if self.kind == "cpu" and self.threads == 1 else "wall"

    @property
    def backend_options(self) -> dict[str, Any]:
        """What the backend runs with beyond the fields (ONNX Runtime's session options); fixed for a
        backend and threads, both in the key."""
        if self.backend == "onnxruntime":
            from lts.models.onnx_export import SESSION_OPTIONS

            return {**SESSION_OPTIONS, "intra_op_num_threads": self.threads}
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key, "backend_options": self.backend_options}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Protocol":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def seq_len_for(self, config: Any) -> int:
        return self.seq_len if self.seq_len is not None else int(config.tgt_len)
