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
    # held-out loss every this many steps as well as at the end (0: only at the end). The learning
    # curve shows whether the ranking of a run is still moving; evaluation draws no random numbers
    # and runs without dropout, so it leaves training and the final perplexity exactly as without it.
    eval_every: int = 250
    # > 0: each architecture's peak rate is lr * lr_width / d_model (0: the same lr for every model).
    # Adam's update size does not shrink with width, so a narrow model's hidden layers move less per
    # step relative to their scale at one shared rate; muP (Yang et al. 2021) scales Adam's hidden-layer
    # rate by 1/width for this reason. Measured on four default-space GPT-2s (2000 steps, rates 1.5e-3,
    # 3e-3, 6e-3): the best rate was 6e-3 at d_model 64 and 3e-3 at d_model 96 and 128.
    lr_width: int = 0
    # which named recipe these fields started from (see RECIPES); fields given on top are recorded too
    name: str = "lts-v1"

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise LtsError(f"steps must be >= 0, got {self.steps}")
        for name in ("batch_size", "seq_len", "eval_sequences", "threads"):
            if getattr(self, name) < 1:
                raise LtsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise LtsError(f"learning rate must be positive, got {self.lr}")
        if self.lr_width < 0:
            raise LtsError(f"lr_width must be >= 0, got {self.lr_width}")
        if self.eval_every < 0:
            raise LtsError(f"eval_every must be >= 0, got {self.eval_every}")
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

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "Recipe":
        """The recipe registered as ``name``, with ``overrides`` on top (refused in one line if unknown)."""
        if name not in RECIPES:
            raise LtsError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
        base = asdict(RECIPES[name])
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def checkpoints(self) -> list[int]:
        """Steps after which the held-out loss is measured (the last step always)."""
        every = self.eval_every or self.steps
        marks = list(range(every, self.steps, every)) if every else []
        return [*marks, self.steps] if self.steps else []

    def tokens_at(self, step: int) -> int:
        """Training tokens seen after ``step`` steps."""
        return step * self.batch_size * self.seq_len

    def peak_lr(self, d_model: int | None = None) -> float:
        """The peak learning rate of a model of width ``d_model`` (``lr`` itself without a width rule)."""
        if self.lr_width and d_model:
            return self.lr * self.lr_width / d_model
        return self.lr

    def lr_at(self, step: int, d_model: int | None = None) -> float:
        """Learning rate of optimiser step ``step`` (0-based) for a model of width ``d_model``."""
        peak = self.peak_lr(d_model)
        if step < self.warmup_steps:
            return peak * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        floor = peak * self.min_lr_ratio
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# Named recipes: a validation's figures are reproducible by name after the default moves on.
# "lts-v1" is the recipe of the README's first validation figures (12 GPT-2s, Spearman +0.41).
# "lts-v2" answers the diagnosis of issue 21, chosen from per-model losses, never from a Spearman:
# depth-scaled init changed nothing (0.406 against 0.413), train and held-out loss differ by a uniform
# 0.06-0.08 nats (no overfitting to fight with dropout), but a 4-layer d_model-64 model trails a
# 2-layer one at every checkpoint of a 2000-step run and closes from 7.6 to 1.0 perplexity points at
# 5000 steps; at one shared rate it is also the model furthest from its best rate. So: twice the
# tokens (4000 steps, about 4 epochs, 16 models in about an hour on 2 cores) and a width-scaled rate.
RECIPES: dict[str, Recipe] = {
    "lts-v1": Recipe(),
    "lts-v2": Recipe(name="lts-v2", steps=4000, warmup_steps=400, lr=3e-3, lr_width=128, eval_every=500),
}
DEFAULT_RECIPE = "lts-v2"
