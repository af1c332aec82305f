"""Memory-efficient differentiable architecture search (DARTSformer) for causal LMs: ``lts darts``."""
