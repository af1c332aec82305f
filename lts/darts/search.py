"""Memory-efficient differentiable search (DARTSformer, Zhao et al., Findings of ACL 2021), for causal LMs.

The supernet (:mod:`lts.darts.supernet`) trains by first-order DARTS: each step updates the
architecture weights ``alpha`` on a batch of the held-out part of the training text, then the
operation weights on a batch of the rest. Backpropagation by reconstruction
(:mod:`lts.models.reversible`) keeps activation memory flat in depth. At the end the strongest
operation of every split and layer is the derived architecture, a ``darts`` config that lts builds,
measures and trains like any other; it is stored as the single front member of a run
(strategy ``darts``) with the loss and ``softmax(alpha)`` history in the run's state.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lts.darts.supernet import SupernetSpec
from lts.errors import LtsError
from lts.space.config import DartsConfig
from lts.store.db import Store
from lts.validate.corpus import DEFAULT_VALID_FRACTION, load_corpus
from lts.validate.tokenizer import TokenizerSpec, prepare_tokens

STRATEGY = "darts"


@dataclass(frozen=True)
class DartsSettings:
    spec: SupernetSpec = field(default_factory=SupernetSpec)  # vocab_size is set from the tokenizer
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3  # operation weights: AdamW, cosine decay
    weight_decay: float = 0.01
    arch_lr: float = 3e-3  # alpha: Adam(0.5, 0.999) with weight decay 1e-3, DARTS's settings
    arch_weight_decay: float = 1e-3
    arch_warmup: int | None = None  # weight-only steps before alpha moves (default: 10% of steps)
    arch_fraction: float = 0.5  # share of the training text held out for the alpha updates
    grad_clip: float = 1.0
    seed: int = 0
    reconstruct: bool = True  # False: ordinary DARTS backprop (for comparison)
    threads: int | None = None
    corpus: str | None = None
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    valid_fraction: float = DEFAULT_VALID_FRACTION
    eval_batches: int = 16
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise LtsError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise LtsError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0.05 <= self.arch_fraction <= 0.95:
            raise LtsError(f"arch_fraction must lie in [0.05, 0.95], got {self.arch_fraction}")
        if self.lr <= 0 or self.arch_lr <= 0:
            raise LtsError("learning rates must be positive")

    @property
    def warmup(self) -> int:
        return self.steps // 10 if self.arch_warmup is None else max(0, self.arch_warmup)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spec"] = self.spec.to_dict()
        out["tokenizer"] = asdict(self.tokenizer)
        return out


@dataclass
class DartsResult:
    run_id: str
    config: DartsConfig
    weights: list[list[list[float]]]
    history: list[dict[str, Any]]
    supernet_valid_loss: float
    seconds: float


def _batch(stream: Any, rng: np.random.Generator, batch: int, T: int) -> tuple[Any, Any]:
    """``batch`` random windows of ``T + 1`` tokens of a torch token stream, as (input, target)."""
    import torch

    from lts.validate.training import windows

    return windows(stream, torch.from_numpy(rng.integers(0, len(stream) - T - 1, size=batch)), T)


def _create_run(store: Store, settings: DartsSettings) -> str:
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    space = {"family": "darts", "name": "darts-supernet", **settings.to_dict()}
    with store.write() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
            " budget, status, state_json, pid, host, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, "darts", json.dumps(space, sort_keys=True), STRATEGY, json.dumps(["supernet_loss"]),
             "{}", settings.seed, settings.steps, "running", "{}", os.getpid(), socket.gethostname(), now, now))
    return run_id


def _update(store: Store, run_id: str, **cols: Any) -> None:
    cols["updated_at"] = time.time()
    sets = ", ".join(f"{k} = ?" for k in cols)
    with store.write() as conn:
        conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*cols.values(), run_id))


def run_darts(
    store: Store,
    settings: DartsSettings,
    cache_dir: str | Path,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> DartsResult:
    """Search, derive and store; the run row is live (status, step, history) while it trains."""
    import torch

    from lts.darts.supernet import build_supernet, set_trainable

    corpus = load_corpus(settings.corpus)
    data = prepare_tokens(corpus, settings.tokenizer, cache_dir, settings.valid_fraction)
    spec = replace(settings.spec, vocab_size=data.vocab_size)
    settings = replace(settings, spec=spec)
    T = spec.tgt_len
    cut = int(len(data.train) * (1 - settings.arch_fraction))
    train_t = torch.from_numpy(data.train.astype(np.int64))  # once, not per batch
    w_stream, a_stream = train_t[:cut], train_t[cut:]
    if min(len(w_stream), len(a_stream), len(data.valid)) < T + 2:
        raise LtsError(f"corpus {corpus.source!r} is too small for sequences of {T} tokens")

    if settings.threads:
        torch.set_num_threads(settings.threads)
    net = build_supernet(spec, seed=settings.seed, reconstruct=settings.reconstruct)
    model = net.model.train()
    w_opt = torch.optim.AdamW(net.weight_parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=settings.arch_lr, betas=(0.5, 0.999),
                             weight_decay=settings.arch_weight_decay)
    rng = np.random.default_rng(settings.seed)
    run_id = _create_run(store, settings)
    history: list[dict[str, float]] = []
    snapshots: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    w_loss_avg = a_loss_avg = float("nan")
    try:
        for step in range(settings.steps):
            lr = settings.lr * 0.5 * (1 + math.cos(math.pi * step / settings.steps))
            for g in w_opt.param_groups:
                g["lr"] = lr
            a_loss = float("nan")
            if step >= settings.warmup:
                set_trainable(net, "arch")
                x, y = _batch(a_stream, rng, settings.batch_size, T)
                loss = model(x, y)
                a_opt.zero_grad(set_to_none=True)
                loss.backward()
                a_opt.step()
                a_loss = loss.item()
            set_trainable(net, "weights")
            x, y = _batch(w_stream, rng, settings.batch_size, T)
            loss = model(x, y)
            w_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.weight_parameters(), settings.grad_clip)
            w_opt.step()
            w_loss = loss.item()
            if not math.isfinite(w_loss):
                raise LtsError(f"the supernet diverged at step {step} (loss {w_loss})")
            w_loss_avg = w_loss if math.isnan(w_loss_avg) else 0.9 * w_loss_avg + 0.1 * w_loss
            if not math.isnan(a_loss):
                a_loss_avg = a_loss if math.isnan(a_loss_avg) else 0.9 * a_loss_avg + 0.1 * a_loss
            point = {"step": step + 1, "train_loss": round(w_loss, 5),
                     "arch_loss": None if math.isnan(a_loss) else round(a_loss, 5),  # None: alpha not updated yet
                     "seconds": round(time.perf_counter() - t0, 3)}
            if on_step is not None:
                on_step(step, point)
            last = step + 1 == settings.steps
            if (step + 1) % settings.log_every == 0 or last:
                history.append(point)
                snapshots.append({"step": step + 1, "weights": net.weights()})
                _update(store, run_id, n_evaluated=step + 1, elapsed=time.perf_counter() - t0,
                        message=f"step {step + 1}/{settings.steps}: train loss {w_loss_avg:.3f}",
                        state_json=json.dumps({"history": history, "alpha_snapshots": snapshots[-1:],
                                               "settings": settings.to_dict()}))
        valid_loss = _supernet_loss(model, data.valid, settings, T)
        derived = net.derive()
        weights = net.weights()
    except BaseException as exc:  # KeyboardInterrupt included: the run row says how it ended
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        _update(store, run_id, status=status, pid=None, elapsed=time.perf_counter() - t0,
                message=f"{status} at step {len(history) * settings.log_every}: {exc}"[:300])
        raise
    seconds = time.perf_counter() - t0
    state = {"history": history, "alpha_snapshots": snapshots, "final_weights": weights,
             "candidates": list(spec.candidates), "derived": derived.to_dict(),
             "supernet_valid_loss": valid_loss, "settings": settings.to_dict(),
             "tokenizer": data.info, "corpus": {"source": corpus.source, "sha256": corpus.sha256}}
    with store.write() as conn:
        store.upsert_architecture(conn, derived)
        conn.execute("INSERT INTO run_members (run_id, arch_id, eval_index, generation, feasible, on_frontier)"
                     " VALUES (?,?,?,?,?,?)", (run_id, derived.arch_id, 0, settings.steps, 1, 1))
        conn.execute("UPDATE runs SET status='finished', pid=NULL, n_evaluated=?, frontier_size=1, elapsed=?,"
                     " message=?, state_json=?, updated_at=? WHERE run_id=?",
                     (settings.steps, seconds, f"derived {derived.arch_id}; supernet held-out loss {valid_loss:.3f}",
                      json.dumps(state), time.time(), run_id))
    return DartsResult(run_id=run_id, config=derived, weights=weights, history=history,
                       supernet_valid_loss=valid_loss, seconds=seconds)


def _supernet_loss(model: Any, valid: np.ndarray, settings: DartsSettings, T: int) -> float:
    """Mean NLL of the supernet on fixed, evenly spread held-out windows."""
    import torch

    from lts.validate.training import windows

    n = min(settings.eval_batches * settings.batch_size, (len(valid) - 1) // T)
    starts = np.linspace(0, len(valid) - T - 1, n).astype(np.int64)
    stream = torch.from_numpy(valid.astype(np.int64))
    model.eval()
    total = 0.0
    with torch.no_grad():
        for chunk in np.array_split(starts, max(1, n // settings.batch_size)):
            x, y = windows(stream, torch.from_numpy(chunk), T)
            total += float(model(x, y)) * len(chunk)
    model.train()
    return total / n


def step_peak_memory(spec: SupernetSpec, batch_size: int, reconstruct: bool, seed: int = 0) -> dict[str, float]:
    """Peak memory of one search step (alpha update + weight update) above the built supernet, in MB.

    CPU: resident-set growth, peak mark reset first (``/proc/self/clear_refs``), in this process; call
    it in a fresh process per setting for figures that do not depend on what ran before.
    """
    import torch

    from lts.cost.worker import CpuMemory
    from lts.darts.supernet import build_supernet, set_trainable

    net = build_supernet(spec, seed=seed, reconstruct=reconstruct)
    model = net.model.train()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(spec.vocab_size, (batch_size, spec.tgt_len), generator=gen)
    y = torch.randint(spec.vocab_size, (batch_size, spec.tgt_len), generator=gen)
    w_opt = torch.optim.AdamW(net.weight_parameters(), lr=1e-3)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-3)

    def step() -> None:
        for part, opt in (("arch", a_opt), ("weights", w_opt)):
            set_trainable(net, part)
            loss = model(x, y)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()

    step()  # optimiser state and gradient buffers exist from here on: they are not activations
    mem = CpuMemory("memory")
    mem.settle()
    base = mem.rss()
    mem.reset_peak()
    t = time.perf_counter()
    step()
    seconds = time.perf_counter() - t
    peak = mem.hwm()
    params = sum(p.numel() for p in model.parameters())
    return {"peak_mb": peak - base, "base_mb": base, "step_seconds": seconds, "params": params}
