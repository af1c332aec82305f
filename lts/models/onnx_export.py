"""Export an lts model's forward to ONNX and run it with ONNX Runtime (the ``onnxruntime`` backend).

The graph is exported once per architecture, for the protocol's fixed input shape: a fixed shape lets
ONNX Runtime fold every shape computation and plan its buffers once (what a deployed model of one
context length gets too). The exporter is PyTorch's TorchScript one (``dynamo=False``): the dynamo
exporter needs ``onnxscript``, and it is what Archai's LTS pipeline uses. The graph computes what the
torch backend's forward computes: the log-probs of every position and, for Transformer-XL, the new
recurrence memory too (left out, ONNX Runtime would prune that work).

Session options are fixed (and written into the protocol, :attr:`lts.cost.protocol.Protocol.backend_options`):
the CPU execution provider, every graph optimisation (``ORT_ENABLE_ALL``: constant folding, fused
LayerNorm, GELU, MatMul + bias), ``intra_op_num_threads`` = the protocol's threads, one inter-op thread,
sequential execution. With one intra-op thread ONNX Runtime computes on the calling thread (no pool),
so the ``cpu`` clock times it as it times torch.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported when exporting: the protocol reads SESSION_OPTIONS without it
    import torch
    from torch import nn

OPSET = 17
SESSION_OPTIONS = {"execution_provider": "CPUExecutionProvider", "graph_optimization_level": "ORT_ENABLE_ALL",
                   "inter_op_num_threads": 1, "execution_mode": "ORT_SEQUENTIAL", "opset": OPSET}


def _xl_forward(model: "nn.Module") -> "nn.Module":
    """Transformer-XL's forward with the memory as separate inputs and outputs (ONNX has no lists)."""
    from torch import nn

    class XLForward(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, idx: "torch.Tensor", *mems: "torch.Tensor") -> tuple["torch.Tensor", ...]:
            logp, new_mems = self.model(idx, mems=list(mems) if mems else None)
            return (logp, *new_mems) if mems else (logp,)

    return XLForward()


def export_onnx(model: "nn.Module", idx: "torch.Tensor", mems: "list[torch.Tensor] | None", path: str
                ) -> dict[str, Any]:
    """Write the ONNX graph of ``model``'s forward at ``idx``'s shape to ``path``; returns the feeds
    (input name -> numpy array) that run it.

    ``mems`` (Transformer-XL): the recurrence memory the forward reads; empty or None for no memory.
    """
    import torch

    mems = [m for m in (mems or []) if m.size(1) > 0]  # zero-length inputs: ORT refuses them
    xl = hasattr(model, "init_mems")
    module = _xl_forward(model) if xl else model
    names = ["idx"] + [f"mem{i}" for i in range(len(mems))]
    outputs = ["logp"] + ([f"new_mem{i}" for i in range(len(mems))] if xl else [])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript tracer warnings about Python control flow on shapes
        torch.onnx.export(module, (idx, *mems), path, dynamo=False, input_names=names, output_names=outputs,
                          opset_version=OPSET, do_constant_folding=True)
    return {n: v.detach().cpu().numpy() for n, v in zip(names, [idx, *mems])}


def ort_session(path: str, threads: int) -> Any:
    """An ONNX Runtime inference session for the graph at ``path`` with :data:`SESSION_OPTIONS` and ``threads``.

    From a file, as a deployed model loads: a session made from bytes keeps a reference to them.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: its warnings go to stderr on every session
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def ort_runner(path: str, feeds: dict[str, Any], threads: int) -> Any:
    """A callable running the graph at ``path`` on ``feeds`` in ONNX Runtime; returns its outputs."""
    sess = ort_session(path, threads)
    return lambda: sess.run(None, feeds)
