"""Train one architecture for a fixed recipe and measure its held-out perplexity.

Every architecture of a validation run sees the same recipe: the same optimiser, learning-rate
schedule, seed, batch size, sequence length and number of steps, and the same batches in the same
order (the batch sampler's seed does not depend on the architecture). What differs between two
results is therefore the architecture, which is what a proxy is supposed to rank.

* GPT-2: each step takes ``batch_size`` random windows of ``seq_len + 1`` tokens of the training
  stream. Validation uses a fixed set of non-overlapping held-out windows, evenly spread over the
  held-out text (at most ``eval_sequences`` of them), and the token-weighted mean NLL.
* Transformer-XL: the training stream is cut into ``batch_size`` contiguous streams read segment
  by segment with the recurrence memory carried over (as Transformer-XL trains); validation reads
  the held-out text the same way. Without that, its memory would never be used.

With the thread count and seeds fixed, training is deterministic: the same job gives the same
perplexity to the last bit (tests check this).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from lts.errors import LtsError
from lts.space.config import Config, TransXLConfig
from lts.validate.recipe import Recipe

__all__ = ["Recipe", "TrainResult", "evaluate", "train"]


@dataclass(frozen=True)
class TrainResult:
    valid_loss: float
    valid_ppl: float
    train_loss: float | None  # mean over the last tenth of the steps (None with 0 steps)
    wall_seconds: float
    tokens_per_second: float | None
    steps: int
    weights: bytes | None = None  # safetensors of the trained model, when the recipe keeps them
    weights_note: str | None = None  # why they were not kept (over the size limit)
    # the learning curve: {"step", "tokens", "valid_loss"} at each of the recipe's checkpoints
    curve: list[dict[str, float]] | None = None


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Decay matrices only: decaying LayerNorm gains and biases pulls them towards 0 for no benefit.
    decay, no_decay = [], []
    for p in model.parameters():  # tied tensors appear once
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _init_projections(model: torch.nn.Module, seed: int) -> None:
    """Unit-gain init of the adaptive embedding/softmax projections (see ``Recipe.proj_init``)."""
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for name, p in model.named_parameters():  # a tied projection is visited once
            if ".emb_projs." in name:  # used as embed @ P.T: fan-in is d_embed
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
            elif name.startswith("crit.out_proj_"):  # used as hidden @ P: fan-in is d_model
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[0]))


def windows(stream: torch.Tensor, starts: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = starts[:, None] + torch.arange(length + 1)[None, :]
    chunk = stream[idx]
    return chunk[:, :-1], chunk[:, 1:]


def _eval_starts(n_tokens: int, seq_len: int, limit: int) -> torch.Tensor:
    """Starts of up to ``limit`` non-overlapping held-out windows, spread evenly over the text."""
    n_windows = (n_tokens - 1) // seq_len
    if n_windows < 1:
        raise LtsError(f"held-out text has {n_tokens} tokens, fewer than one sequence of {seq_len + 1}")
    picks = np.unique(np.linspace(0, n_windows - 1, min(limit, n_windows)).round().astype(np.int64))
    return torch.from_numpy(picks * seq_len)


def _streams(tokens: torch.Tensor, batch: int) -> torch.Tensor:
    """``batch`` contiguous streams of equal length (Transformer-XL's ordered iterator)."""
    per = tokens.numel() // batch
    if per < 2:
        raise LtsError(f"{tokens.numel()} tokens cannot fill {batch} streams")
    return tokens[: per * batch].view(batch, per)


def evaluate(model: torch.nn.Module, cfg: Config, valid: torch.Tensor, recipe: Recipe) -> float:
    """Token-weighted mean NLL (nats) on the fixed held-out set."""
    model.eval()
    total, count = 0.0, 0
    T = recipe.seq_len
    with torch.no_grad():
        if isinstance(cfg, TransXLConfig):
            streams = _streams(valid, min(recipe.batch_size, max(1, (valid.numel() - 1) // (T + 1))))
            n_seg = min((streams.size(1) - 1) // T, max(1, recipe.eval_sequences // streams.size(0)))
            mems = None
            for s in range(n_seg):
                x, y = streams[:, s * T:(s + 1) * T], streams[:, s * T + 1:(s + 1) * T + 1]
                loss, mems = model(x, y, mems)
                total += float(loss) * y.numel()
                count += y.numel()
        else:
            starts = _eval_starts(valid.numel(), T, recipe.eval_sequences)
            for chunk in starts.split(64):
                x, y = windows(valid, chunk, T)
                total += float(model(x, y)) * y.numel()
                count += y.numel()
    model.train()
    return total / count


def train(
    cfg: Config,
    train_tokens: np.ndarray,
    valid_tokens: np.ndarray,
    recipe: Recipe,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``cfg`` from its seeded init for ``recipe.steps`` steps; return held-out perplexity."""
    from lts.models import build_model

    if cfg.tgt_len < recipe.seq_len:
        raise LtsError(f"architecture {cfg.arch_id} has tgt_len={cfg.tgt_len} < sequence length {recipe.seq_len}")
    torch.set_num_threads(recipe.threads)
    t0 = time.perf_counter()
    train_t = torch.from_numpy(train_tokens.astype(np.int64))
    valid_t = torch.from_numpy(valid_tokens.astype(np.int64))
    if int(train_t.max()) >= cfg.vocab_size or int(valid_t.max()) >= cfg.vocab_size:
        raise LtsError(f"architecture {cfg.arch_id} has vocab_size={cfg.vocab_size}, smaller than the tokenizer's")
    T, B = recipe.seq_len, recipe.batch_size
    if train_t.numel() < T + 2:
        raise LtsError(f"training text has {train_t.numel()} tokens, fewer than one sequence of {T + 1}")

    model = build_model(cfg, dropout=recipe.dropout, seed=recipe.seed)
    if recipe.proj_init == "fan_in":
        _init_projections(model, recipe.seed)
    model.train()
    opt = torch.optim.AdamW(_param_groups(model, recipe.weight_decay), lr=recipe.peak_lr(cfg.d_model),
                            betas=(recipe.beta1, recipe.beta2))
    # The batch sampler's seed is the recipe's, not the architecture's: all models see one data order.
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    is_xl = isinstance(cfg, TransXLConfig)
    streams = _streams(train_t, B) if is_xl else None
    mems = None
    tail = max(1, recipe.steps // 10)
    tail_losses: list[float] = []
    marks = set(recipe.checkpoints()[:-1])  # the last one is the final evaluation below
    curve: list[dict[str, float]] = []
    eval_seconds = 0.0  # checkpoint evaluations are not training throughput
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group["lr"] = recipe.lr_at(step, cfg.d_model)
        if is_xl:
            n_seg = (streams.size(1) - 1) // T
            s = step % n_seg
            if s == 0:
                mems = None  # a new pass over the streams starts without memory
            x, y = streams[:, s * T:(s + 1) * T], streams[:, s * T + 1:(s + 1) * T + 1]
            loss, mems = model(x, y, mems)
        else:
            starts = torch.randint(0, train_t.numel() - T - 1, (B,), generator=gen)
            x, y = windows(train_t, starts, T)
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise LtsError(f"training diverged at step {step} (loss {value})")
        if step >= recipe.steps - tail:
            tail_losses.append(value)
        if on_step is not None:
            on_step(step, value)
        if step + 1 in marks:
            e0 = time.perf_counter()
            curve.append({"step": step + 1, "tokens": recipe.tokens_at(step + 1),
                          "valid_loss": evaluate(model, cfg, valid_t, recipe)})
            eval_seconds += time.perf_counter() - e0
    train_seconds = time.perf_counter() - t0 - eval_seconds
    valid_loss = evaluate(model, cfg, valid_t, recipe)
    if recipe.steps:
        curve.append({"step": recipe.steps, "tokens": recipe.tokens_at(recipe.steps), "valid_loss": valid_loss})
    weights, note = None, None
    if recipe.keep_weights_mb > 0:
        from lts.models import state_bytes

        data = state_bytes(model)
        if len(data) <= recipe.keep_weights_mb * 1e6:
            weights = data
        else:
            note = f"weights not kept: {len(data) / 1e6:.1f} MB > keep_weights_mb={recipe.keep_weights_mb:g}"
    wall = time.perf_counter() - t0
    return TrainResult(
        weights=weights,
        weights_note=note,
        valid_loss=valid_loss,
        valid_ppl=math.exp(valid_loss),
        train_loss=float(np.mean(tail_losses)) if tail_losses else None,
        wall_seconds=wall,
        tokens_per_second=(recipe.steps * B * T / train_seconds) if recipe.steps and train_seconds > 0 else None,
        steps=recipe.steps,
        curve=curve if len(curve) > 1 else None,
    )
