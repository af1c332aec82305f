"""Registers lts's families with ``transformers``' Auto classes (``AutoConfig``, ``AutoModelForCausalLM``).

Importing lts arms this (see ``lts/__init__.py``) without importing ``transformers``, which costs
2-6 s: the registration runs when ``transformers``' auto module is first imported, so
``AutoModelForCausalLM.from_pretrained(folder)`` knows ``lts_gpt2``, ``lts_transxl`` and ``lts_darts``
whenever lts was imported first. lts's own export code calls :func:`register` directly.
"""

from __future__ import annotations


def register_configs() -> None:
    from transformers import AutoConfig

    from lts.models.hf_configs import CONFIG_CLASSES

    for cls in CONFIG_CLASSES.values():
        AutoConfig.register(cls.model_type, cls, exist_ok=True)


def register() -> None:
    """Both Auto classes; idempotent."""
    from transformers import AutoModelForCausalLM

    from lts.models.hf_modeling import MODEL_CLASSES

    register_configs()
    for cls in MODEL_CLASSES.values():
        AutoModelForCausalLM.register(cls.config_class, cls, exist_ok=True)
