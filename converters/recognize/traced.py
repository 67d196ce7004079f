"""Recognize correlation layers inside a TorchScript trace, where the Python classes are gone.

A trace keeps its module hierarchy: each submodule keeps its class name (``original_name``) and
its traced methods (``forward``, ``forward1``, ... one per call site), whose graphs hold the
layer's decomposed body. For a submodule whose class was a sampler-like correlation API, each
candidate attribute set (patch sizes 3..21, dilated patch 1..2; a trace keeps no Python
attributes) is tried on a fresh copy of the trace: every method body of that submodule is replaced
by ``edgeflow::correlation`` plus a reshape to the sampler's 5-D layout, and the whole trace is
run on the example inputs against the untouched one. Only an exact match (fp32 round-off) is
kept; otherwise convert warns that the trace lost the correlation.
"""

from __future__ import annotations

import io

import torch

from converters.recognize.apis import SAMPLER_CLASSES, Unsupported, sampler_attrs
from converters.recognize.layers import VERIFY_RTOL, Layer

PATCH_CANDIDATES = (9, 7, 5, 3, 11, 13, 15, 17, 19, 21)
DILATION_CANDIDATES = (1, 2)


def _fresh(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu")


def _submodule(module, path: str):
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _forward_methods(sub) -> list:
    return [name for name in sub._c._method_names() if name == "forward" or (name.startswith("forward") and name[7:].isdigit())]


def _rewrite_method(method, attrs, patch: int, swap: bool = False) -> None:
    """Replace a traced method body (self, f1, f2) -> 5-D sampler output by edgeflow's op."""
    g = method.graph
    inputs = list(g.inputs())
    if len(inputs) != 3:
        raise Unsupported(f"a traced method with {len(inputs) - 1} inputs, expected two feature maps")
    ret = g.return_node()
    g.setInsertPoint(ret)
    a = attrs
    consts = [g.insertConstant(v) for v in (a.max_displacement, a.kernel_size, a.stride1, a.stride2, a.pad_size, bool(a.normalize))]
    # The tracer orders a method's inputs by first use, not by the call's argument order, so the
    # caller tries both (``swap``) and keeps the one the whole trace confirms.
    f1, f2 = (inputs[2], inputs[1]) if swap else (inputs[1], inputs[2])
    corr = g.create("edgeflow::correlation", [f1, f2] + consts)
    g.insertNode(corr)
    corr.output().setType(torch._C.TensorType.get().with_sizes([None] * 4))
    dims = []
    for axis in (0, 2, 3):
        size = g.create("aten::size", [corr.output(), g.insertConstant(axis)])
        g.insertNode(size)
        size.output().setType(torch._C.IntType.get())
        dims.append(size.output())
    p = g.insertConstant(patch)
    shape = g.create("prim::ListConstruct", [dims[0], p, p, dims[1], dims[2]])
    g.insertNode(shape)
    shape.output().setType(torch._C.ListType.ofInts())
    out = g.create("aten::reshape", [corr.output(), shape.output()])  # reshape: rank known to the exporter
    g.insertNode(out)
    out.output().setType(torch._C.TensorType.get().with_sizes([None] * 5))
    ret.replaceInput(0, out.output())
    torch._C._jit_pass_dce(g)


def _close(want, got) -> float | None:
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return None
    diff = float((got.float() - want.float()).abs().max())
    return diff if diff <= VERIFY_RTOL * max(float(want.float().abs().max()), 1e-6) else None


def rewrite_traced(module: torch.jit.ScriptModule, example_inputs, runner):
    """(copy with recognized submodules rewritten or None, layers, paths left as they were)."""
    candidates = [(path, sub.original_name) for path, sub in module.named_modules()
                  if path and getattr(sub, "original_name", "") in SAMPLER_CLASSES]
    if not candidates:
        return None, [], []
    with torch.no_grad():
        want = runner(module, example_inputs)
    current = _fresh(module)
    layers, lost = [], []

    def attempt(base, path, attrs, patch, plan):
        """A fresh copy of ``base`` with methods ``plan`` ({name: swap}) rewritten; its diff or None."""
        trial = _fresh(base)
        sub = _submodule(trial, path)
        try:
            for name, swap in plan.items():
                _rewrite_method(sub._c._get_method(name), attrs, patch, swap)
            with torch.no_grad():
                return trial, _close(want, runner(trial, example_inputs))
        except Exception:
            return trial, None

    for path, cls in candidates:
        methods = _forward_methods(_submodule(current, path))
        found = None
        # 1. the attributes, on the first method (both input orders), the others untouched
        for patch in PATCH_CANDIDATES:
            for dp in DILATION_CANDIDATES:
                attrs = sampler_attrs(1, patch, 1, 0, 1, dp)
                for swap in (False, True):
                    trial, diff = attempt(current, path, attrs, patch, {methods[0]: swap})
                    if diff is not None:
                        found = (attrs, patch, {methods[0]: swap}, trial, diff)
                        break
                if found:
                    break
            if found:
                break
        if found is None:
            lost.append(path)
            continue
        attrs, patch, plan, trial, diff = found
        # 2. every other call site of the same module, one at a time (input order per method)
        for name in methods[1:]:
            for swap in (False, True):
                candidate, d = attempt(current, path, attrs, patch, {**plan, name: swap})
                if d is not None:
                    plan, trial, diff = {**plan, name: swap}, candidate, d
                    break
        if len(plan) != len(methods):
            lost.append(path)
            continue
        current = trial
        layer = Layer(path, f"{SAMPLER_CLASSES[cls]}, from the TorchScript trace", attrs, five_d=True)
        layer.calls, layer.max_abs = len(methods), diff
        layers.append(layer)
    return (current if layers else None), layers, lost
