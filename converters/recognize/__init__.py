"""Find the correlation layers of a user's model and swap each for edgeflow's op.

Why: a flow model built on spatial-correlation-sampler, mmcv, flownet2's CUDA package, the cupy
kernels of the PWC-Net / LiteFlowNet ports or localcorr exports as hundreds of standard ops (or
not at all): none of edgeflow's fast bodies, TensorRT plugin or INT8 handling reach it. Each
API's semantics is mapped to :class:`~converters.ops.CorrelationAttrs` in
:mod:`converters.recognize.apis`; this module finds the layers (modules by class, functional
forms by name in the model's module globals), swaps them *in a copy* (the user's model stays
untouched, and parity is checked against it), and verifies each swap on the model's own
activations, layer by layer, before anything is exported.

The escape hatch: ``declare(model, "decoder.corr", max_displacement=4, ...)`` (CLI:
``--correlation decoder.corr:max_displacement=4``) says "this module of mine is a correlation
with these attributes"; it is verified the same way.
"""

from __future__ import annotations

import copy
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from converters.ops.attrs import CorrelationAttrs
from converters.ops.correlation import correlation
from converters.recognize.apis import FUNCTIONS, Mapping, Unsupported, cupy_attrs, match, sampler_attrs, takes_stride
from converters.recognize.layers import VERIFY_RTOL, EdgeflowCorrelation, Layer, describe  # noqa: F401 (re-exported)
from edgeflow.errors import EdgeflowError, first_line


@dataclass
class Recognition:
    """The model to export (``module``: a swapped copy, or the original when nothing was found)."""

    module: nn.Module
    layers: list[Layer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def replaced(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.status != "skipped"]

    def lines(self) -> list[str]:
        return [layer.line() for layer in self.layers] + self.warnings

    def as_dict(self) -> dict:
        return {"layers": [layer.as_dict() for layer in self.layers], "warnings": list(self.warnings)}


# ----------------------------------------------------------------------------------------------
# Functional forms: patched in the model's module globals while the swapped model runs.
# ----------------------------------------------------------------------------------------------


def _sampler_function(f1, f2, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1, **_):
    a = sampler_attrs(kernel_size, patch_size, stride, padding, dilation, dilation_patch)
    return EdgeflowCorrelation(a, five_d=True)(f1, f2)


def _cupy_function(f1, f2, intStride=None, **kwargs):  # noqa: N803 (the port's own name)
    if "tenOne" in kwargs or "tenTwo" in kwargs:
        f1, f2 = kwargs.pop("tenOne", f1), kwargs.pop("tenTwo", f2)
    a = cupy_attrs(intStride)
    return correlation(f1, f2, a.max_displacement, a.kernel_size, a.stride1, a.stride2, a.pad_size, a.normalize)


def _cupy_function_kw(tenOne=None, tenTwo=None, intStride=None):  # noqa: N803
    return _cupy_function(tenOne, tenTwo, intStride)


def _replacement_function(name: str, original):
    if name == "FunctionCorrelation":
        if takes_stride(original):
            return lambda tenOne, tenTwo, intStride=1: _cupy_function(tenOne, tenTwo, intStride)  # noqa: N803
        return lambda tenOne, tenTwo: _cupy_function(tenOne, tenTwo, None)  # noqa: N803
    return _sampler_function


def _function_sites(model: nn.Module) -> list[tuple[dict, str, object]]:
    """(globals dict, name, original function) for recognized functional forms the model's code can call."""
    sites, seen = [], set()
    for module in model.modules():
        mod = sys.modules.get(type(module).__module__)
        if mod is None or id(mod) in seen or type(module).__module__.startswith(("torch.", "converters.")):
            continue
        seen.add(id(mod))
        for name in FUNCTIONS:
            fn = mod.__dict__.get(name)
            if callable(fn) and getattr(fn, "__name__", name) in (name, "<lambda>") and not getattr(fn, "_edgeflow", False):
                sites.append((mod.__dict__, name, fn))
    return sites


@contextmanager
def _patched(sites, make):
    """Temporarily rebind each site's name to ``make(space, name, original)``."""
    try:
        for space, name, fn in sites:
            new = make(space, name, fn)
            new._edgeflow = True
            space[name] = new
        yield
    finally:
        for space, name, fn in sites:
            space[name] = fn


class _WithFunctions(nn.Module):
    """The swapped model; while it runs, functional correlation calls go to edgeflow's op."""

    def __init__(self, inner: nn.Module, sites):
        super().__init__()
        self.inner = inner
        self._sites = sites

    def forward(self, *args, **kwargs):
        with _patched(self._sites, lambda _space, name, fn: _replacement_function(name, fn)):
            return self.inner(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# Verification: the original layer and its replacement on the model's own activations.
# ----------------------------------------------------------------------------------------------


def _max_rel_diff(want, got) -> tuple[float, float]:
    if not isinstance(want, torch.Tensor) or want.shape != got.shape:
        shape = tuple(want.shape) if isinstance(want, torch.Tensor) else type(want).__name__
        raise Unsupported(f"output shape {shape} vs edgeflow's {tuple(got.shape)}")
    diff = float((want.float() - got.float()).abs().max()) if want.numel() else 0.0
    scale = float(want.float().abs().max()) if want.numel() else 0.0
    return diff, diff / max(scale, 1e-6)


def _capture(model: nn.Module, paths: dict[str, nn.Module], sites, example_inputs, runner):
    """Run the ORIGINAL model once; record (args, output) of every candidate call."""
    calls: dict[str, list] = {p: [] for p in paths}
    calls.update({f"{s[0].get('__name__', '?')}.{s[1]}": [] for s in sites})
    handles, depth = [], [0]  # depth: inside a recognized module (its own inner function calls don't count)
    for path, mod in paths.items():
        def pre(_m, _args):
            depth[0] += 1

        def hook(_m, args, out, _p=path):
            depth[0] -= 1
            calls[_p].append((tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args), out))
        if isinstance(mod, nn.Module):
            handles.append(mod.register_forward_pre_hook(pre))
            handles.append(mod.register_forward_hook(hook))

    def recorder(name, fn, space):
        key = f"{space.get('__name__', '?')}.{name}"

        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            if depth[0] == 0:
                calls[key].append((args, kwargs, out))
            return out
        return wrapped

    error = None
    try:
        with ExitStack() as stack:
            stack.enter_context(_patched(sites, lambda space, name, fn: recorder(name, fn, space)))
            with torch.no_grad():
                runner(model, example_inputs)
    except Exception as err:  # CUDA-only kernels (cupy, the sampler's extension) cannot run here
        error = first_line(err)
    finally:
        for h in handles:
            h.remove()
    return calls, error


def _verify(layer: Layer, replacement, recorded, functional: bool) -> None:
    worst = 0.0
    for entry in recorded:
        if functional:
            args, kwargs, out = entry
            got = replacement(*args, **kwargs)
        else:
            args, out = entry
            got = replacement(*args)
        diff, rel = _max_rel_diff(out, got)
        if rel > VERIFY_RTOL:
            raise Unsupported(f"edgeflow's op differs from the original by {diff:.3g} (relative {rel:.1e})")
        worst = max(worst, diff)
    layer.calls, layer.max_abs = len(recorded), worst


def _default_runner(model, example_inputs):
    return model(*example_inputs)


def recognize(
    model: nn.Module,
    example_inputs: tuple | None = None,
    declared: dict[str, dict] | None = None,
    runner=_default_runner,
    enabled: bool = True,
) -> Recognition:
    """Recognize correlation layers of ``model`` and return a swapped copy (``model`` untouched).

    ``example_inputs`` feed one verification forward (``runner(model, example_inputs)``, for
    models that take dicts); without them, swaps are reported as unverified. ``declared`` maps
    module paths to attribute dicts (the escape hatch: ``max_displacement``, ``kernel_size``,
    ``stride1``, ``stride2``, ``pad_size``, ``normalize``, ``output`` "4d"/"5d").
    """
    declared = dict(declared or {})
    result = Recognition(model)
    if isinstance(model, torch.jit.ScriptModule):
        if declared:
            raise EdgeflowError("--correlation needs the Python model (a pickle with --trust-pickle, a checkpoint or .pt2); "
                                "a TorchScript archive's modules cannot be replaced")
        if enabled and example_inputs is not None and "edgeflow::correlation" not in str(model.inlined_graph):
            from converters.recognize.traced import rewrite_traced

            try:
                swapped, layers, lost = rewrite_traced(model, example_inputs, runner)
            except Exception as err:  # the trace itself does not run: leave it to the size probe / parity
                swapped, layers, lost = None, [], [f"(could not run: {first_line(err)[:80]})"]
            result.layers.extend(layers)
            if swapped is not None:
                result.module = swapped
            if lost:
                result.warnings.extend(_trace_warnings(model, lost))
        else:
            result.warnings.extend(_trace_warnings(model))
        return result
    if isinstance(model, torch.fx.GraphModule) and any("nn_module_stack" in n.meta for n in model.graph.nodes):
        # A torch.export program: module classes are gone, their calls are node groups.
        from converters.recognize.exported import rewrite_exported

        swapped, layers = rewrite_exported(model)
        result.layers.extend(layers)
        if any(layer.status != "skipped" for layer in layers):
            result.module = swapped
        if declared:
            raise EdgeflowError("--correlation needs the Python model (a pickle with --trust-pickle or a checkpoint); "
                                "a .pt2 program's modules are inlined")
        return result
    named = dict(model.named_modules())
    for path in declared:
        if path not in named:
            near = [p for p in named if p and p.split(".")[-1] == path.split(".")[-1]][:3]
            hint = f"; modules with that name: {', '.join(near)}" if near else ""
            raise EdgeflowError(f"--correlation {path}: the model has no module at that path{hint}")
    found: dict[str, tuple[nn.Module, Mapping]] = {}
    for path, mod in named.items():
        if not path:
            continue
        if path in declared:
            opts = dict(declared[path])
            five_d = str(opts.pop("output", "4d")).lower() == "5d"
            try:
                attrs = CorrelationAttrs(**opts)
            except (TypeError, ValueError) as err:
                raise EdgeflowError(f"--correlation {path}: {first_line(err)}") from None
            found[path] = (mod, Mapping("declared", attrs, five_d))
            continue
        if not enabled:
            continue
        try:
            mapping = match(mod)
        except Unsupported as err:
            result.layers.append(Layer(path, type(mod).__name__, None, status="skipped", reason=str(err)))
            continue
        if mapping is not None:
            found[path] = (mod, mapping)
    sites = _function_sites(model) if enabled else []
    if not found and not sites:
        return result
    calls, error = ({}, "no example inputs") if example_inputs is None else _capture(model, {p: m for p, (m, _) in found.items()}, sites, example_inputs, runner)
    swapped = copy.deepcopy(model)
    for path, (mod, mapping) in found.items():
        layer = Layer(path, mapping.api, mapping.attrs, mapping.five_d)
        replacement = EdgeflowCorrelation(mapping.attrs, mapping.five_d, mapping.stride_arg, mapping.api)
        recorded = calls.get(path) or []
        try:
            if recorded:
                _verify(layer, replacement, recorded, functional=False)
                if mapping.stride_arg and len(recorded[0][0]) > 2:  # LiteFlowNet: stride passed per call
                    layer.attrs = cupy_attrs(recorded[0][0][2])
            elif mapping.api == "declared":
                raise Unsupported(f"the declared module was never called with the example inputs ({error or 'not reached'})")
            else:
                layer.status, layer.reason = "unverified", (f"the original could not run here ({error})" if error else "not called by the example forward")
        except Unsupported as err:
            if mapping.api == "declared":
                raise EdgeflowError(f"--correlation {path}: {err}; check the attributes (docs/byo.md)") from None
            layer.status, layer.reason = "skipped", str(err)
            result.layers.append(layer)
            continue
        _set_module(swapped, path, replacement)
        result.layers.append(layer)
    used = _sites_called(swapped, sites, example_inputs, runner) if (error and sites and example_inputs is not None) else None
    kept_sites = []
    for space, name, fn in sites:
        key = f"{space.get('__name__', '?')}.{name}"
        layer = Layer(key, FUNCTIONS[name], None, five_d=name != "FunctionCorrelation")
        recorded = calls.get(key) or []
        replacement = _replacement_function(name, fn)
        try:
            if recorded:
                _verify(layer, replacement, recorded, functional=True)
                args, kwargs = recorded[0][0], recorded[0][1]
                layer.attrs = _function_attrs(name, fn, args, kwargs)
            else:
                if error is None or (used is not None and (id(space), name) not in used):
                    continue  # imported but never called by this model (outside recognized layers)
                layer.status, layer.reason = "unverified", f"the original could not run here ({error})"
                layer.attrs = cupy_attrs(None) if name == "FunctionCorrelation" and not takes_stride(fn) else None
        except Unsupported as err:
            layer.status, layer.reason = "skipped", str(err)
            result.layers.append(layer)
            continue
        kept_sites.append((space, name, fn))
        result.layers.append(layer)
    result.module = _WithFunctions(swapped, kept_sites) if kept_sites else swapped
    if not result.replaced:
        result.module = model
    return result


def _sites_called(swapped: nn.Module, sites, example_inputs, runner) -> set:
    """Which functional sites the swapped model calls, found with edgeflow's op standing in
    (the original could not run, e.g. a CUDA-only kernel on this machine)."""
    used = set()

    def make(space, name, fn):
        replacement = _replacement_function(name, fn)

        def wrapped(*args, **kwargs):
            used.add((id(space), name))
            return replacement(*args, **kwargs)
        return wrapped
    try:
        with _patched(sites, make), torch.no_grad():
            runner(swapped, example_inputs)
    except Exception:
        return {(space_id, name) for space_id, name in ((id(s), n) for s, n, _ in sites)}
    return used


def _function_attrs(name, fn, args, kwargs) -> CorrelationAttrs | None:
    if name == "FunctionCorrelation":
        stride = args[2] if len(args) > 2 else kwargs.get("intStride")
        return cupy_attrs(stride if takes_stride(fn) else None)
    params = ["kernel_size", "patch_size", "stride", "padding", "dilation", "dilation_patch"]
    values = dict(zip(params, args[2:]))
    values.update({k: v for k, v in kwargs.items() if k in params})
    return sampler_attrs(**values)


def _set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


def declare(model: nn.Module, path: str, example_inputs: tuple, output: str = "4d", **attrs) -> Recognition:
    """The escape hatch in Python: ``declare(model, "decoder.corr", (f1, f2), max_displacement=4)``.

    Returns a :class:`Recognition` whose ``module`` is a copy with that layer replaced by
    edgeflow's op, verified on the model's own activations (raises EdgeflowError when it differs).
    """
    return recognize(model, example_inputs, declared={path: {**attrs, "output": output}}, enabled=False)


def parse_declaration(text: str) -> tuple[str, dict]:
    """``"decoder.corr:max_displacement=4,stride2=2,normalize=0,output=5d"`` -> (path, attrs)."""
    path, sep, rest = text.partition(":")
    if not path or not sep:
        raise EdgeflowError(f"--correlation {text!r}: write MODULE_PATH:max_displacement=N[,kernel_size=..,stride1=..,"
                            "stride2=..,pad_size=..,normalize=0|1,output=4d|5d]")
    attrs: dict = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in {"max_displacement", "kernel_size", "stride1", "stride2", "pad_size", "normalize", "output"}:
            raise EdgeflowError(f"--correlation {text!r}: unknown or empty attribute {item!r}")
        if key == "output":
            attrs[key] = value.strip()
            continue
        try:
            attrs[key] = int(value)
        except ValueError:
            raise EdgeflowError(f"--correlation {text!r}: {key} must be an integer, got {value!r}") from None
    if "max_displacement" not in attrs:
        raise EdgeflowError(f"--correlation {text!r}: max_displacement is required")
    if "normalize" in attrs:
        attrs["normalize"] = bool(attrs["normalize"])
    return path, attrs


# ----------------------------------------------------------------------------------------------
# TorchScript archives: the module classes are gone; say what the trace lost.
# ----------------------------------------------------------------------------------------------

_TRACE_NAMES = {"SpatialCorrelationSampler", "IterSpatialCorrelationSampler", "ModuleCorrelation", "Correlation",
                "TritonSpatialCorrelationSampler", "LocalCorrCudaPyramidSampler"}


def traced_correlation_modules(module: torch.jit.ScriptModule) -> list[str]:
    """Paths of submodules of a TorchScript archive whose original class was a correlation API."""
    found = []
    for path, sub in module.named_modules():
        if path and getattr(sub, "original_name", "") in _TRACE_NAMES:
            found.append(path)
    return found


def _trace_warnings(module: torch.jit.ScriptModule, paths: list[str] | None = None) -> list[str]:
    paths = traced_correlation_modules(module) if paths is None else paths
    graph = str(getattr(module, "inlined_graph", ""))
    if paths and "edgeflow::correlation" not in graph:
        more = f" (+{len(paths) - 2} more)" if len(paths) > 2 else ""
        return [f"the TorchScript trace lost the correlation ({', '.join(paths[:2])}{more} recorded as standard ops, "
                "so it cannot be swapped): convert the pickled model with --trust-pickle or a torch.export .pt2 instead"]
    return []
