"""``transformers`` causal LMs of lts's three families, around lts's own modules.

``LtsGPT2ForCausalLM``, ``LtsTransXLForCausalLM`` and ``LtsDartsForCausalLM`` hold the very module lts
builds, measures and trains (``transformer``: :class:`GPT2Flex`, :class:`MemTransformerLM`,
:class:`DartsLM`), so their logits are lts's to the last bit and their non-embedding parameters are
LTS's proxy by construction; what this file adds is the ``transformers`` contract:

* ``forward(input_ids, attention_mask, labels, cache, ...)`` returns ``loss`` (``labels`` shifted inside,
  ``-100`` ignored, ``num_items_in_batch`` honoured as ``Trainer`` passes it) and ``logits``. The
  adaptive softmax gives log-probabilities, which are logits (softmax of them is the distribution).
* ``generate()``: GPT-2 keeps a ``transformers`` KV cache (and takes left padding); Transformer-XL
  carries its recurrence memory as the cache (:class:`XLMemory`), so generation reuses it exactly as
  the model was trained to; the DARTS family recomputes the sequence at every step (its
  convolutions would need a state of their own).
* ``save_pretrained`` writes safetensors and, with the ``auto_map``, copies of this file and the
  model files it imports, which import only torch and ``transformers``: a saved folder loads with
  ``trust_remote_code=True`` where lts is not installed.
* ``num_parameters(exclude_embeddings=True)`` is LTS's non-embedding count (the decoder: what
  ``lts.space.counts.decoder_params`` computes), not ``transformers``' "all but nn.Embedding", which
  would count the adaptive softmax's projections and biases as decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput

from .darts import DartsLM
from .gpt2 import GPT2Flex
from .hf_configs import LtsDartsConfig, LtsGPT2Config, LtsTransXLConfig
from .transxl import MemTransformerLM


class LtsPreTrainedModel(PreTrainedModel):
    base_model_prefix = "transformer"
    _supports_sdpa = True

    transformer: nn.Module

    def _init_weights(self, module: nn.Module) -> None:
        # lts's init (normal(0, initializer_range) weights, zero biases, unit LayerNorms), written with
        # transformers' init functions: they skip tensors from_pretrained has loaded already
        from transformers import initialization as init

        super()._init_weights(module)  # Linear, Conv1d, Embedding, LayerNorm
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Embedding, nn.LayerNorm)):
            return
        for name, p in module.named_parameters(recurse=False):  # the adaptive layers' and attention's own
            if "bias" in name:
                init.zeros_(p)
            else:
                init.normal_(p, mean=0.0, std=self.config.initializer_range)

    def _tie_pairs(self) -> dict[str, str]:
        """``{target: source}`` of the parameters the adaptive softmax shares with the embedding."""
        emb = "wte" if isinstance(self.transformer, GPT2Flex) else "word_emb"
        return {f"transformer.crit.{t}": f"transformer.{emb}.{s}"
                for t, s in self.transformer.crit.tied_names()}  # type: ignore[union-attr]

    def get_input_embeddings(self) -> nn.Module:
        return getattr(self.transformer, "wte", None) or self.transformer.word_emb  # type: ignore[return-value]

    def get_output_embeddings(self) -> None:
        return None  # an adaptive softmax, not one matrix: transformers must not re-tie or resize it

    def resize_token_embeddings(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("lts models cannot resize their (adaptive) embedding: export the architecture "
                         "with the vocab_size (and cutoffs) of your tokenizer instead")

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        if not exclude_embeddings:
            return super().num_parameters(only_trainable=only_trainable)
        unique = {id(p): p for m in self.transformer.decoder_modules() for p in m.parameters()}  # type: ignore[operator]
        return sum(p.numel() for p in unique.values() if p.requires_grad or not only_trainable)

    def _loss(self, hidden_or_logits: torch.Tensor, labels: torch.Tensor, nll: Any,
              num_items_in_batch: Any = None) -> torch.Tensor:
        """Next-token loss: position ``t`` predicts ``labels[t + 1]``; ``-100`` is ignored."""
        h = hidden_or_logits[:, :-1].reshape(-1, hidden_or_logits.size(-1))
        target = labels[:, 1:].reshape(-1).to(h.device)
        keep = target != -100
        losses = nll(h[keep], target[keep])
        if num_items_in_batch is not None:  # Trainer with gradient accumulation: the sum over its count
            return losses.sum() / num_items_in_batch
        return losses.sum() / keep.sum().clamp(min=1)

    def _adaptive_outputs(self, h: torch.Tensor, labels: torch.Tensor | None, logits_to_keep: int,
                          kwargs: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(loss, logits)`` from the last hidden states through the adaptive softmax (GPT-2, XL)."""
        crit = self.transformer.crit  # type: ignore[union-attr]
        loss = None if labels is None else self._loss(h, labels, crit.nll, kwargs.get("num_items_in_batch"))
        kept = h[:, -logits_to_keep:] if logits_to_keep else h
        return loss, crit.log_prob(kept.reshape(-1, kept.size(-1))).view(*kept.shape[:2], -1)

    @staticmethod
    def _no_padding(attention_mask: torch.Tensor | None, family: str) -> None:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError(f"the {family} family takes no padding (attention_mask has zeros): "
                             "give sequences of one length")


class LtsGPT2ForCausalLM(LtsPreTrainedModel, GenerationMixin):
    config_class = LtsGPT2Config
    config: LtsGPT2Config

    def __init__(self, config: LtsGPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Flex(config, dropout=config.dropout)
        self._tied_weights_keys = self._tie_pairs()
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: Any = None,
                labels: torch.Tensor | None = None, use_cache: bool | None = None,
                logits_to_keep: int = 0, **kwargs: Any) -> CausalLMOutputWithPast:
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache()
        h = self.transformer.hidden(input_ids, position_ids, attention_mask, cache if use_cache else None)
        loss, logits = self._adaptive_outputs(h, labels, logits_to_keep, kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache if use_cache else None)


@dataclass
class XLMemory:
    """Transformer-XL's recurrence memory, carried by ``generate()`` where other models keep a KV cache:
    per layer, the last ``mem_len`` inputs ``(B, <=mem_len, d_model)``."""

    mems: list[torch.Tensor]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.mems[layer_idx].size(1) if self.mems else 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:  # beam search
        self.mems = [m.index_select(0, beam_idx.to(m.device)) for m in self.mems]


@dataclass
class XLCausalLMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: XLMemory | None = None


class _NoDefaultCache:
    """For the families whose cache is not a ``transformers`` Cache (or that have none)."""

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, next_sequence_length: int | None = None,
                                      cache: Any = None, **kwargs: Any) -> dict[str, Any]:
        # transformers feeds only the new token whenever use_cache is on; without a cache that
        # would drop the context, so the whole sequence goes in then
        if cache is None:
            next_sequence_length = None
        return super().prepare_inputs_for_generation(  # type: ignore[misc]
            input_ids, next_sequence_length=next_sequence_length, cache=cache, **kwargs)


class LtsTransXLForCausalLM(_NoDefaultCache, LtsPreTrainedModel, GenerationMixin):
    config_class = LtsTransXLConfig
    config: LtsTransXLConfig

    def __init__(self, config: LtsTransXLConfig) -> None:
        super().__init__(config)
        self.transformer = MemTransformerLM(config, dropout=config.dropout)
        self._tied_weights_keys = self._tie_pairs()
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: XLMemory | None = None, labels: torch.Tensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0, **kwargs: Any) -> XLCausalLMOutput:
        self._no_padding(attention_mask, "transxl")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        model = self.transformer
        h, mems = model.hidden(input_ids, cache.mems if cache is not None else None)
        loss, logits = self._adaptive_outputs(model.drop(h), labels, logits_to_keep, kwargs)
        keep_memory = use_cache and self.config.mem_len > 0
        return XLCausalLMOutput(loss=loss, logits=logits, cache=XLMemory(mems) if keep_memory else None)


class LtsDartsForCausalLM(_NoDefaultCache, LtsPreTrainedModel, GenerationMixin):
    config_class = LtsDartsConfig
    config: LtsDartsConfig

    def __init__(self, config: LtsDartsConfig) -> None:
        super().__init__(config)
        self.transformer = DartsLM(config)
        self._tied_weights_keys = self._tie_pairs()
        self.post_init()

    def _tie_pairs(self) -> dict[str, str]:
        return {"transformer.head.weight": "transformer.wte.weight"}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, logits_to_keep: int = 0, **kwargs: Any) -> CausalLMOutputWithPast:
        self._no_padding(attention_mask, "darts")
        logits = self.transformer(input_ids)  # log-probabilities
        loss = None
        if labels is not None:
            def nll(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return F.nll_loss(x, t, reduction="none")
            loss = self._loss(logits, labels, nll, kwargs.get("num_items_in_batch"))
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return CausalLMOutputWithPast(loss=loss, logits=logits)


MODEL_CLASSES: dict[str, type[LtsPreTrainedModel]] = {
    "gpt2": LtsGPT2ForCausalLM, "transxl": LtsTransXLForCausalLM, "darts": LtsDartsForCausalLM,
}

for _cls in MODEL_CLASSES.values():
    _cls.register_for_auto_class("AutoModelForCausalLM")
