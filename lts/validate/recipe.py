"""The training recipe of a validation run: one dataclass, recorded with the run (no torch import here)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from lts.errors import LtsError


@dataclass(frozen=True)
class Recipe:
    """The one training recipe every architecture of a validation run gets (recorded with the run).

    Defaults were tuned once on the shipped Austen corpus (2048-token BPE) for the default validation
    space (GPT-2s of 0.03-1.3 M decoder parameters, d_model 64-128): at 600 steps a peak rate of
    1.5e-3 ranked four sizes exactly where 3e-3 put the largest behind a model 7x smaller and 6e-3
    stalled every model above 0.3 M; at 1000 steps a 4-layer model still trailed a 1-layer one of a
    fifth of its size, and at 2000 steps it caught up. 2000 steps of 16 x 64 tokens (2 epochs of the
    training text) train a dozen such models in about 20 minutes on 2 cores.
    """

    steps: int = 2000
    batch_size: int = 16
    seq_len: int = 64
    lr: float = 1.5e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio at the last step
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    dropout: float = 0.0
    seed: int = 0
    eval_sequences: int = 512
    threads: int = 1  # torch threads per job: jobs run side by side, one core each
    # "fan_in": the adaptive embedding's projections (present when d_embed != d_model or div_val > 1)
    # start at unit gain, std 1/sqrt(fan_in). lts.models' N(0, 0.02) init is Transformer-XL's, made
    # for 200k-step runs; a signal through two such small matrices in a row learns slowly, and in a
    # 1000-step run every model with projections came out worse than every model without (e.g. a
    # 2.4 M-parameter model at perplexity 154 against 97 for a 67 k one; 92 with this init), so the
    # proxies would have been judged on an init artefact. "model" keeps lts.models' init.
    proj_init: str = "fan_in"
    # keep each trained model's weights (safetensors, in the database) when they take at most this
    # many MB; 0 keeps none. Opt-in: a run of 12 default models keeps about 40 MB.
    keep_weights_mb: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise LtsError(f"steps must be >= 0, got {self.steps}")
        for name in ("batch_size", "seq_len", "eval_sequences", "threads"):
            if getattr(self, name) < 1:
                raise LtsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise LtsError(f"learning rate must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise LtsError(f"warm-up steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.keep_weights_mb <= 100_000:
            raise LtsError(f"keep_weights_mb must lie in 0..100000, got {self.keep_weights_mb}")
        if self.proj_init not in ("fan_in", "model"):
            raise LtsError(f"proj_init must be fan_in or model, got {self.proj_init!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "optimizer": "AdamW", "schedule": "linear warm-up, cosine decay"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        floor = self.lr * self.min_lr_ratio
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
