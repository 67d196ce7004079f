"""Recognize correlation layers inside a ``torch.export`` program (``.pt2``), where classes are gone.

An exported program is a flat graph of aten ops, but every node remembers which module call it
came from (``node.meta["nn_module_stack"]``: path, class name, and ``@n`` for the n-th call of a
module). So the nodes of each call of a ``SpatialCorrelationSampler``-like module (PTLFlow's
pure-PyTorch ``IterSpatialCorrelationSampler`` is what ``torch.export`` can capture) form one
group with two tensor inputs and one output. Each group is cut out as its own small graph, run
on random inputs of the recorded shapes and compared with edgeflow's op for the attribute sets
its output shape allows (patch size from the 5-D shape; dilated patch 1..4); the first that
matches replaces the group by one ``edgeflow::correlation`` node. Nothing is replaced on a guess.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx

from converters.recognize.apis import SAMPLER_CLASSES, Unsupported, sampler_attrs
from converters.recognize.layers import VERIFY_RTOL, EdgeflowCorrelation, Layer

MAX_DILATION_PATCH = 4


def _groups(graph: fx.Graph) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        for key, value in stack.items():
            try:
                path, type_name = value
            except (TypeError, ValueError):
                continue
            cls = str(type_name).rsplit(".", 1)[-1]
            if cls in SAMPLER_CLASSES or (cls.endswith(("SpatialSampler", "PyramidSampler")) and "localcorr" in str(type_name)):
                g = groups.setdefault(key, {"path": path, "type": str(type_name), "class": cls, "nodes": []})
                g["nodes"].append(node)
                break  # the outermost correlation module owns the node
    return groups


def _val(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _boundary(nodes: list[fx.Node]):
    members = set(nodes)
    inputs, outputs = [], []
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg not in members and arg.op != "get_attr" and arg not in inputs:
                inputs.append(arg)
        if any(user not in members for user in node.users):
            outputs.append(node)
    return inputs, outputs


def _subgraph(gm: fx.GraphModule, nodes: list[fx.Node], inputs: list[fx.Node], output: fx.Node) -> fx.GraphModule:
    graph = fx.Graph()
    env = {}
    for i, node in enumerate(inputs):
        env[node] = graph.placeholder(f"in{i}")
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg not in env and arg.op == "get_attr":
                env[arg] = graph.node_copy(arg)
        env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[output])
    return fx.GraphModule(gm, graph)


def _match(sub: fx.GraphModule, shapes, out_shape) -> tuple:
    """(attrs, swapped input order, max |diff|) of the edgeflow op that reproduces ``sub``."""
    if len(out_shape) != 5 or out_shape[1] != out_shape[2]:
        raise Unsupported(f"output shape {tuple(out_shape)} is not the sampler's (B, P, P, H, W)")
    patch = int(out_shape[1])
    g = torch.Generator().manual_seed(0)
    f1, f2 = (torch.randn(*[int(d) for d in s], generator=g) for s in shapes)
    with torch.no_grad():
        want = sub(f1, f2)
        for dp in range(1, MAX_DILATION_PATCH + 1):
            try:
                attrs = sampler_attrs(1, patch, 1, 0, 1, dp)
            except Unsupported:
                raise
            for swap in (False, True):
                a, b = (f2, f1) if swap else (f1, f2)
                got = EdgeflowCorrelation(attrs, five_d=True)(a, b)
                if got.shape != want.shape:
                    continue
                diff = float((got - want).abs().max())
                if diff <= VERIFY_RTOL * max(float(want.abs().max()), 1e-6):
                    return attrs, swap, diff
    raise Unsupported("no kernel-1 sampler attribute set (dilated patch 1..4) reproduces it")


def rewrite_exported(gm: fx.GraphModule):
    """A copy of ``gm`` with each recognized correlation call replaced; returns (copy, layers)."""
    groups = _groups(gm.graph)
    if not groups:
        return gm, []
    new = copy.deepcopy(gm)
    node_by_name = {n.name: n for n in new.graph.nodes}
    layers = []
    for key, group in groups.items():
        nodes = [node_by_name[n.name] for n in group["nodes"]]
        call = key.rsplit("@", 1)[1] if "@" in key else "0"
        label = f"{group['path']} (call {int(call) + 1})"
        api = SAMPLER_CLASSES.get(group["class"], "localcorr")
        layer = Layer(label, f"{api}, from the .pt2 graph", None, five_d=True)
        try:
            inputs, outputs = _boundary(nodes)
            tensors = [n for n in inputs if isinstance(_val(n), torch.Tensor)]
            if len(tensors) != 2 or len(inputs) != 2 or len(outputs) != 1:
                raise Unsupported(f"{len(inputs)} input(s) and {len(outputs)} output(s), expected two feature maps and one cost volume")
            out = outputs[0]
            sub = _subgraph(new, nodes, inputs, out)
            attrs, swap, diff = _match(sub, [_val(n).shape for n in inputs], _val(out).shape)
        except Unsupported as err:
            layer.status, layer.reason = "skipped", str(err)
            layers.append(layer)
            continue
        except Exception as err:  # a group we cannot cut out or run: leave it as it is
            layer.status, layer.reason = "skipped", f"could not isolate the layer ({type(err).__name__})"
            layers.append(layer)
            continue
        f1, f2 = (inputs[1], inputs[0]) if swap else (inputs[0], inputs[1])
        a = attrs
        with new.graph.inserting_after(out):
            corr = new.graph.call_function(torch.ops.edgeflow.correlation.default,
                                           (f1, f2, a.max_displacement, a.kernel_size, a.stride1, a.stride2, a.pad_size, bool(a.normalize)))
        with new.graph.inserting_after(corr):
            five = new.graph.call_function(torch.ops.aten.unflatten.int, (corr, 1, [a.grid_width, a.grid_width]))
        members = set(nodes)
        out.replace_all_uses_with(five, delete_user_cb=lambda user: user not in members and user is not five and user is not corr)
        for node in reversed(nodes):
            if not node.users:
                new.graph.erase_node(node)
        layer.attrs, layer.calls, layer.max_abs = attrs, 1, diff
        layers.append(layer)
    new.graph.lint()
    new.recompile()
    return new, layers
