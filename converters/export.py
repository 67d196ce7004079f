"""PyTorch -> ONNX export with the correlation op kept as one ``edgeflow::Correlation`` node.

The op is a ``torch.library`` custom op (``torch.ops.edgeflow.correlation``), so both of torch's
exporters emit one custom node per call: the TorchScript exporter through a registered symbolic,
the dynamo exporter through ``torch.onnx.ops.symbolic`` (eager models) or the custom translation
of :mod:`converters.ops.dynamo` (programs that already hold the op: ``.pt2``, traces).
:func:`attach_correlation_functions` then adds a standard-op function body. Exporters have been
seen dropping or decomposing custom ops, and third-party correlation layers the recognizers
(:mod:`converters.recognize`) missed decompose too; so every export is checked: the number of
Correlation nodes must equal the number of correlation calls made by the model, and
:mod:`converters.validate` compares the exported graph with PyTorch numerically before an
artifact is ever marked valid.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from onnx import helper

from converters.ops.attrs import CorrelationAttrs
from converters.ops.correlation import ONNX_DOMAIN, ONNX_DOMAIN_VERSION, ONNX_OP, count_calls
from converters.ops.onnx_function import DEFAULT_FORMULATION, build_correlation_function, correlation_nodes, node_attrs
from edgeflow.errors import EdgeflowError, first_line

DEFAULT_OPSET = 17
EXPORTERS = ("torchscript", "dynamo")
#: torch 2.13's dynamo exporter writes opset 18..25 only.
DYNAMO_MIN_OPSET = 18


@dataclass
class ExportResult:
    path: Path
    opset: int
    exporter: str
    correlation: list[dict] = field(default_factory=list)  # one attribute dict per distinct set
    correlation_nodes: int = 0


def attach_correlation_functions(model: onnx.ModelProto, formulation: str = DEFAULT_FORMULATION) -> list[CorrelationAttrs]:
    """Give every ``edgeflow::Correlation`` node a standard-op body (in place); returns the attribute sets."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    nodes = correlation_nodes(model)
    sets: list[CorrelationAttrs] = []
    for n in nodes:
        a = node_attrs(n)
        if a not in sets:
            sets.append(a)
    del model.functions[:]
    if formulation == "gather":
        # One attribute-generic body serves every set: no overloads needed.
        if sets:
            model.functions.append(build_correlation_function(sets[0], opset, formulation))
    else:
        if len(sets) > 1:
            # One body per attribute set, told apart by IR-10 overload ids.
            model.ir_version = max(model.ir_version, 10)
        for i, a in enumerate(sets):
            overload = f"set{i}" if len(sets) > 1 else None
            model.functions.append(build_correlation_function(a, opset, formulation, overload))
            if overload:
                for n in nodes:
                    if node_attrs(n) == a:
                        n.overload = overload
    if nodes and not any(o.domain == ONNX_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(ONNX_DOMAIN, ONNX_DOMAIN_VERSION))
    return sets


def count_correlation_calls(module: torch.nn.Module, example_inputs: tuple) -> int:
    """How many times one eager forward calls the correlation op (layers may be reused)."""
    with torch.no_grad(), count_calls() as calls:
        module(*example_inputs)
    return calls[0]


@contextmanager
def _silenced_fds():
    """Silence stdout/stderr at the file-descriptor level: torch's C++ side prints there directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _export_reason(err: BaseException) -> str:
    """The line that says why: the dynamo exporter's first line is only 'Failed to convert ...
    Next steps:'; the cause (a missing ONNX function, an unsupported op) is further down."""
    import re

    text = "\n".join(str(e) for e in (err, err.__cause__) if e is not None)
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if re.search(r"No ONNX function found|not supported|Unsupported|DispatchError|Error when translating", line):
            return line[:300]
    return first_line(err)


def _quiet_export(*args, **kwargs):
    """torch's exporters print pages of deprecation and tracer warnings; users need none of them."""
    sink = io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink), _silenced_fds():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            return torch.onnx.export(*args, **kwargs)
        except Exception as err:  # surface the exporter's own message, once, on one line
            raise EdgeflowError(f"ONNX export failed: {_export_reason(err)}") from err
        finally:
            logging.disable(logging.NOTSET)


def _sdpa_any_rank():
    """``aten.scaled_dot_product_attention`` for any rank, for the dynamo exporter.

    Why: torch's ONNX function for it (onnxscript torchlib) takes 4-D ``(B, heads, L, E)`` only
    and fails on the 3-D ``(B, L, E)`` attention that flow models use for global matching
    (NeuFlow: ``AssertionError: only 4D query, key, and value are supported``), so such a
    ``.pt2`` could not convert. 4-D calls still go to torch's function; any other rank is written
    here as PyTorch documents the op (every dimension before the last two is a batch dimension):
    ``softmax(q @ k^T * scale + mask) @ v``, with a causal or boolean mask as ``-inf`` entries.
    Dropout is an identity at inference."""
    import math

    from onnxscript import opset18 as op
    from onnxscript.function_libs.torch_lib.ops.nn import aten_scaled_dot_product_attention as four_d

    def sdpa(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale=None,
             enable_gqa: bool = False):
        rank = len(query.shape)
        if rank == 4 and len(key.shape) == 4 and len(value.shape) == 4:
            return four_d(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if len(key.shape) != rank or len(value.shape) != rank or enable_gqa:
            raise ValueError(f"scaled_dot_product_attention: ranks {rank}/{len(key.shape)}/{len(value.shape)}"
                             f"{' with enable_gqa' if enable_gqa else ''} are not supported")
        embed = query.shape[-1]
        if scale is None and isinstance(embed, int):
            scale = 1.0 / math.sqrt(embed)
        if scale is None:
            factor = op.Reciprocal(op.Sqrt(op.CastLike(op.Shape(query, start=-1), query)))
        else:
            factor = op.CastLike(op.Constant(value_float=float(scale)), query)
        perm = [*range(rank - 2), rank - 1, rank - 2]
        scores = op.MatMul(op.Mul(query, factor), op.Transpose(key, perm=perm))
        minus_inf = op.CastLike(op.Constant(value_float=float("-inf")), query)
        if is_causal:
            size = op.Concat(op.Shape(query, start=-2, end=-1), op.Shape(key, start=-2, end=-1), axis=0)
            keep = op.Cast(op.Trilu(op.ConstantOfShape(size, value=onnx.helper.make_tensor("one", onnx.TensorProto.INT64, [1], [1])), upper=0),
                           to=onnx.TensorProto.BOOL)
            scores = op.Where(keep, scores, minus_inf)
        if attn_mask is not None:
            if attn_mask.dtype is not None and str(attn_mask.dtype).upper().endswith("BOOL"):
                scores = op.Where(attn_mask, scores, minus_inf)
            else:
                scores = op.Add(scores, attn_mask)
        return op.MatMul(op.Softmax(scores, axis=-1), value)

    return sdpa


def dynamo_translation_table() -> dict:
    """The custom translations every dynamo export uses: the correlation op, and SDPA at any rank."""
    from converters.ops.dynamo import custom_translation_table

    return {**custom_translation_table(), torch.ops.aten.scaled_dot_product_attention.default: _sdpa_any_rank()}


class _ModeFrozen(torch.nn.Module):
    """Wraps a module whose ``.train()``/``.eval()`` raise (``torch.export``'s ``program.module()``):
    the exporters switch modes, this wrapper's switch does not recurse into the program."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True):
        self.training = False
        return self

    def forward(self, *args):
        return self.inner(*args)


def _eval_mode(module: torch.nn.Module) -> torch.nn.Module:
    try:
        return module.eval()
    except NotImplementedError:  # "Calling eval() is not supported yet."
        return _ModeFrozen(module)


def export_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
    formulation: str = DEFAULT_FORMULATION,
    expected_correlations: int | None = None,
) -> ExportResult:
    """Export ``module`` to ``path``; correlation layers become ``edgeflow::Correlation`` + body.

    ``expected_correlations`` (default: the correlation calls of one eager forward) guards against
    exporters that silently drop or decompose the op.
    """
    if exporter not in EXPORTERS:
        raise EdgeflowError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _eval_mode(module)
    if exporter == "torchscript" and any(isinstance(m, torch.fx.GraphModule) for m in module.modules()):
        # A torch.export program (.pt2) is already an aten graph (lift_fresh_copy, ...) that the
        # TorchScript exporter cannot map; the dynamo exporter reads it as it is.
        exporter = "dynamo"
    if expected_correlations is None:
        expected_correlations = count_correlation_calls(module, example_inputs)
    with torch.no_grad():
        if exporter == "torchscript":
            _quiet_export(
                module,
                example_inputs,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                custom_opsets={ONNX_DOMAIN: ONNX_DOMAIN_VERSION} if expected_correlations else None,
                do_constant_folding=True,
                # Inlining traces the op's eager body into a subgraph that breaks the peephole
                # pass; we only want the symbolic node anyway.
                autograd_inlining=False,
            )
        else:
            opset = max(opset, DYNAMO_MIN_OPSET)
            program = _quiet_export(
                module, example_inputs, dynamo=True, opset_version=opset, input_names=input_names,
                output_names=output_names, dynamic_axes=dynamic_axes, external_data=False,
                custom_translation_table=dynamo_translation_table(),
            )
            program.save(str(path))
    model = onnx.load(str(path))
    found = len(correlation_nodes(model))
    if found != expected_correlations:
        raise EdgeflowError(
            f"the {exporter} exporter produced {found} edgeflow::Correlation node(s) but the model makes "
            f"{expected_correlations} correlation call(s): the op was dropped or decomposed; "
            f"re-run with --exporter torchscript"
        )
    sets = attach_correlation_functions(model, formulation)
    onnx.save(model, str(path))
    return ExportResult(path, opset, exporter, [a.as_onnx_attributes() for a in sets], found)
