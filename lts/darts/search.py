"""Memory-efficient differentiable search (DARTSformer, Zhao et al., Findings of ACL 2021), for causal LMs.

The supernet (:mod:`lts.darts.supernet`) trains by first-order DARTS: each step updates the
architecture weights ``alpha`` on a batch of the held-out part of the training text, then the
operation weights on a batch of the rest. Backpropagation by reconstruction
(:mod:`lts.models.reversible`) keeps activation memory flat in depth. At the end the strongest
operation of every split and layer is the derived architecture, a ``darts`` config that lts builds,
measures and trains like any other.

A search is a background job of its own kind (:data:`lts.store.darts.DARTS`, table ``darts_runs``):
:func:`create_darts` fixes it, :func:`run_darts_job` runs or resumes it (``lts darts --resume ID``,
or detached from the dashboard), with the loss and ``softmax(alpha)`` history live in its row and
a checkpoint beside the database that makes it resumable after ``kill -9``.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lts.darts.supernet import SupernetSpec
from lts.errors import LtsError
from lts.space.config import DartsConfig
from lts.jobs import lifecycle
from lts.store import darts as repo
from lts.store import jobs
from lts.store.db import Store
from lts.text.corpus import DEFAULT_VALID_FRACTION, load_corpus
from lts.text.tokenizer import TokenizerSpec, prepare_tokens

CANCEL_POLL_S = 1.0  # how often a running search reads its row for a cancel


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
    checkpoint_every: int = 50  # steps between checkpoints (a killed search resumes from the last)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise LtsError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise LtsError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0.05 <= self.arch_fraction <= 0.95:
            raise LtsError(f"arch_fraction must lie in [0.05, 0.95], got {self.arch_fraction}")
        if self.lr <= 0 or self.arch_lr <= 0:
            raise LtsError("learning rates must be positive")
        if self.log_every < 1 or self.checkpoint_every < 1:
            raise LtsError("log_every and checkpoint_every must be >= 1")

    @property
    def warmup(self) -> int:
        return self.steps // 10 if self.arch_warmup is None else max(0, self.arch_warmup)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spec"] = self.spec.to_dict()
        out["tokenizer"] = asdict(self.tokenizer)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DartsSettings":
        """The settings :meth:`to_dict` wrote (keys this release does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        spec = dict(values.pop("spec", {}))
        spec["candidates"] = tuple(spec.get("candidates", SupernetSpec().candidates))
        tok = values.pop("tokenizer", None) or {}
        return cls(spec=SupernetSpec(**spec), tokenizer=TokenizerSpec(**tok), **values)


@dataclass
class DartsResult:
    darts_id: str
    config: DartsConfig
    weights: list[list[list[float]]]
    history: list[dict[str, Any]]
    supernet_valid_loss: float
    seconds: float

    @property
    def run_id(self) -> str:  # the name before DARTS runs had their own table
        return self.darts_id


def _batch(stream: Any, rng: np.random.Generator, batch: int, T: int) -> tuple[Any, Any]:
    """``batch`` random windows of ``T + 1`` tokens of a torch token stream, as (input, target)."""
    import torch

    from lts.validate.training import windows

    return windows(stream, torch.from_numpy(rng.integers(0, len(stream) - T - 1, size=batch)), T)


def create_darts(store: Store, settings: DartsSettings, cache_dir: str | Path,
                 admit: Callable[[Any], None] | None = None) -> str:
    """Fix a DARTS search and write it as a ``created`` job; returns its id (nothing trains yet).

    The corpus is read and the tokenizer prepared (cached) first, so a bad corpus is refused with
    one line before anything is written; the supernet's vocabulary is the tokenizer's."""
    corpus = load_corpus(settings.corpus)
    data = prepare_tokens(corpus, settings.tokenizer, cache_dir, settings.valid_fraction)
    settings = replace(settings, spec=replace(settings.spec, vocab_size=data.vocab_size))
    _check_sizes(corpus.source, data, settings)
    darts_id = uuid.uuid4().hex[:12]
    repo.create(store, darts_id, settings.to_dict(), settings.seed, settings.steps, admit=admit)
    return darts_id


def _check_sizes(source: str, data: Any, settings: DartsSettings) -> None:
    T = settings.spec.tgt_len
    cut = int(len(data.train) * (1 - settings.arch_fraction))
    if min(cut, len(data.train) - cut, len(data.valid)) < T + 2:
        raise LtsError(f"corpus {source!r} is too small for sequences of {T} tokens")


def run_darts(
    store: Store,
    settings: DartsSettings,
    cache_dir: str | Path,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> DartsResult:
    """Create a DARTS search and run it to the end in this process (:func:`create_darts`, then
    :func:`run_darts_job`); the job row is live (status, step, history) while it trains."""
    darts_id = create_darts(store, settings, cache_dir)
    result = run_darts_job(store, darts_id, cache_dir, on_step)
    if result is None:  # cancelled from elsewhere while it trained
        raise LtsError(f"DARTS run {darts_id} was cancelled; resume it with lts darts --resume {darts_id}")
    return result


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then an atomic rename: a kill mid-write leaves the previous
    checkpoint whole."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_checkpoint(path: str | None) -> dict[str, Any] | None:
    import torch

    if not path or not Path(path).is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback
        raise LtsError(f"cannot read the DARTS checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def run_darts_job(
    store: Store,
    darts_id: str,
    cache_dir: str | Path,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> DartsResult | None:
    """Run (or resume) a DARTS job to the end in this process; ``None`` when it was cancelled.

    Resumable after ``kill -9``: every ``checkpoint_every`` steps the supernet (operation weights
    and ``alpha``), both optimisers, the random generators and the history are saved beside the
    database, and a resumed job continues from there, so it ends with the result an uninterrupted
    one would have. A cancel (lifecycle ``cancelling``) is seen between steps: the job saves a
    checkpoint at that step and ends ``cancelled`` (resumable too)."""
    import torch

    from lts.darts.supernet import build_supernet, set_trainable

    row = repo.get(store, darts_id)
    if row.status == lifecycle.FINISHED:
        raise LtsError(f"DARTS run {darts_id} has already finished")
    settings = DartsSettings.from_dict(row.settings)
    corpus = load_corpus(settings.corpus)
    data = prepare_tokens(corpus, settings.tokenizer, cache_dir, settings.valid_fraction)
    if data.vocab_size != settings.spec.vocab_size:
        raise LtsError(f"DARTS run {darts_id}: the tokenizer now gives {data.vocab_size} tokens, the run was "
                       f"created with {settings.spec.vocab_size}; restore its corpus")
    _check_sizes(corpus.source, data, settings)
    spec = settings.spec
    T = spec.tgt_len
    cut = int(len(data.train) * (1 - settings.arch_fraction))
    train_t = torch.from_numpy(data.train.astype(np.int64))  # once, not per batch
    w_stream, a_stream = train_t[:cut], train_t[cut:]

    if settings.threads:
        torch.set_num_threads(settings.threads)
    net = build_supernet(spec, seed=settings.seed, reconstruct=settings.reconstruct)
    model = net.model.train()
    w_opt = torch.optim.AdamW(net.weight_parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=settings.arch_lr, betas=(0.5, 0.999),
                             weight_decay=settings.arch_weight_decay)
    rng = np.random.default_rng(settings.seed)
    history: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    w_loss_avg = a_loss_avg = float("nan")
    start, elapsed0 = 0, 0.0
    ckpt_path = repo.checkpoint_path(store, darts_id)
    state = _load_checkpoint(row.checkpoint_path or str(ckpt_path))
    if state is not None:
        model.load_state_dict(state["model"])
        w_opt.load_state_dict(state["w_opt"])
        a_opt.load_state_dict(state["a_opt"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history, snapshots = list(state["history"]), list(state["snapshots"])
        w_loss_avg, a_loss_avg = state["w_loss_avg"], state["a_loss_avg"]
        start, elapsed0 = int(state["step"]), float(state["elapsed"])
    jobs.claim(store, repo.DARTS, darts_id)
    t0 = time.perf_counter()
    elapsed = lambda: elapsed0 + time.perf_counter() - t0  # noqa: E731

    def checkpoint(done: int) -> tuple[str, int]:
        _save_checkpoint(ckpt_path, {
            "version": 1, "darts_id": darts_id, "step": done, "elapsed": elapsed(), "model": model.state_dict(),
            "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(), "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "history": history, "snapshots": snapshots,
            "w_loss_avg": w_loss_avg, "a_loss_avg": a_loss_avg})
        return str(ckpt_path), done

    def progress() -> dict[str, Any]:
        return {"history": history, "alpha_snapshots": snapshots[-1:]}

    next_poll = time.monotonic() + CANCEL_POLL_S
    done = start
    try:
        for step in range(start, settings.steps):
            if time.monotonic() >= next_poll:  # a cancel is seen between steps, about once a second
                next_poll = time.monotonic() + CANCEL_POLL_S
                if repo.get(store, darts_id).status == lifecycle.CANCELLING:
                    where = checkpoint(done)
                    repo.record_progress(store, darts_id, done, elapsed(), f"cancelled at step {done}", progress(),
                                         where)
                    repo.end(store, darts_id, lifecycle.CANCELLED,
                             f"cancelled at step {done}/{settings.steps}; resume with lts darts --resume {darts_id}",
                             elapsed())
                    return None
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
                     "seconds": round(elapsed(), 3)}
            if on_step is not None:
                on_step(step, point)
            done = step + 1
            last = done == settings.steps
            logged = done % settings.log_every == 0 or last
            if logged:
                history.append(point)
                snapshots.append({"step": done, "weights": net.weights()})
            saved = checkpoint(done) if done % settings.checkpoint_every == 0 and not last else None
            if logged or saved:
                repo.record_progress(store, darts_id, done, elapsed(),
                                     f"step {done}/{settings.steps}: train loss {w_loss_avg:.3f}", progress(), saved)
        valid_loss = _supernet_loss(model, data.valid, settings, T)
        derived = net.derive()
        weights = net.weights()
    except BaseException as exc:  # KeyboardInterrupt included: the job row says how it ended
        status = lifecycle.CANCELLED if isinstance(exc, KeyboardInterrupt) else lifecycle.FAILED
        repo.end(store, darts_id, status, f"{status} at step {len(history) * settings.log_every}: {exc}"[:300],
                 elapsed())
        raise
    seconds = elapsed()
    result = {"history": history, "alpha_snapshots": snapshots, "final_weights": weights,
              "candidates": list(spec.candidates), "derived": derived.to_dict(),
              "supernet_valid_loss": valid_loss, "settings": settings.to_dict(),
              "tokenizer": data.info, "corpus": {"source": corpus.source, "sha256": corpus.sha256}}
    repo.finish(store, darts_id, derived, result, progress(), settings.steps, seconds,
                f"derived {derived.arch_id}; supernet held-out loss {valid_loss:.3f}")
    ckpt_path.unlink(missing_ok=True)
    return DartsResult(darts_id=darts_id, config=derived, weights=weights, history=history,
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
