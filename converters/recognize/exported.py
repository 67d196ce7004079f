"""Recognize correlation layers inside a ``torch.export`` program (``.pt2``), where classes are gone.

An exported program is a flat graph of aten ops, but every node remembers which module call it
came from (``node.meta["nn_module_stack"]``: path, class name, and ``@n`` for the n-th call of a
module). So the nodes of each call of a ``SpatialCorrelationSampler``-like module (PTLFlow's
pure-PyTorch ``IterSpatialCorrelationSampler`` is what ``torch.export`` can capture) form one
group with two tensor inputs and one output. Each group is cut out as its own small graph, run
on random inputs of the recorded shapes and compared with edgeflow's op for the attribute sets
its output shape allows (patch size from the 5-D shape; dilated patch 1..4); the first that
matches replaces the group by one ``edgeflow::correlation`` node. Nothing is replaced on a guess.

Functional forms (``spatial_correlation_sample(f1, f2, ...)``, PTLFlow's
``iter_spatial_correlation_sample``) leave no module in the stack. What ``torch.export`` keeps is
each node's ``stack_trace``: the user's source line that made the call. The nodes recorded at a
line that calls one of these functions, in the same module call, are that call's candidates; a
loop calling it several times from one line gives several connected pieces, one per call. Each
piece's longest prefix with two tensors in and one 5-D ``(B, P, P, H, W)`` out is the call
(post-processing written on the same line, ``.flatten(1, 2)``, stays) and goes through the same
numeric match. A TorchScript trace keeps neither (see :mod:`converters.recognize.traced`).
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx

import re

from converters.recognize.apis import FUNCTIONS, SAMPLER_CLASSES, Unsupported, sampler_attrs
from converters.recognize.layers import VERIFY_RTOL, EdgeflowCorrelation, Layer

MAX_DILATION_PATCH = 4
#: A source line that calls a recognized functional form (FUNCTION_CALL.search(line).group(1): its name).
FUNCTION_CALL = re.compile(r"(?<![\w.])(?:\w+\.)*(" + "|".join(n for n in FUNCTIONS if n != "FunctionCorrelation") + r")\s*\(")


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


def _call_site(node: fx.Node) -> tuple[str, str] | None:
    """(``File ..., line N`` frame, function name) when the node was recorded at a line calling a
    functional sampler; None otherwise."""
    lines = [line.strip() for line in (node.meta.get("stack_trace") or "").splitlines()]
    for frame, source in zip(lines, lines[1:]):
        found = FUNCTION_CALL.search(source) if frame.startswith("File ") else None
        if found:
            return frame, found.group(1)
    return None


def _pieces(nodes: list[fx.Node]) -> list[list[fx.Node]]:
    """Connected pieces of ``nodes`` (edges between members only), each in graph order."""
    members = {n: i for i, n in enumerate(nodes)}
    parent = list(range(len(nodes)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for node, i in members.items():
        for arg in node.all_input_nodes:
            if arg in members:
                parent[root(i)] = root(members[arg])
    pieces: dict[int, list] = {}
    for node, i in members.items():
        pieces.setdefault(root(i), []).append(node)
    return list(pieces.values())


def _function_groups(graph: fx.Graph) -> dict[str, dict]:
    """One group per call of a functional sampler, from the nodes' recorded source lines."""
    by_site: dict[tuple, list] = {}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        site = _call_site(node)
        if site is not None:
            stack = tuple((node.meta.get("nn_module_stack") or {}).keys())
            by_site.setdefault((stack, *site), []).append(node)
    groups = {}
    for (stack, frame, name), nodes in by_site.items():
        where = frame.replace("File ", "").replace('"', "")
        for i, piece in enumerate(_pieces(nodes)):
            groups[f"{name}@{where}#{i}"] = {"path": f"{name}() at {where.rsplit('/', 1)[-1]}", "function": name,
                                              "nodes": piece, "call": i}
    return groups


def _function_candidates(piece: list[fx.Node]):
    """Prefixes of a call's piece (graph order), longest first, that end where the function
    returns: two tensors in, one 5-D ``(B, P, P, H, W)`` tensor out. Code after the call on the
    same line (``.flatten(1, 2)``) is the suffix; a result filled in place (``out[:, i, j] = ...``,
    kept as ``copy_`` nodes) is still the one tensor the rest of the graph reads."""
    for k in range(len(piece), 0, -1):
        nodes = piece[:k]
        inputs, outputs = _boundary(nodes)
        if len(outputs) != 1 or len(inputs) != 2:
            continue
        val = _val(outputs[0])
        if isinstance(val, torch.Tensor) and val.dim() == 5 and val.shape[1] == val.shape[2]:
            yield nodes


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
    grouped = {n for g in groups.values() for n in g["nodes"]}
    functional = {k: g for k, g in _function_groups(gm.graph).items() if not grouped & set(g["nodes"])}
    if not groups and not functional:
        return gm, []
    new = copy.deepcopy(gm)
    node_by_name = {n.name: n for n in new.graph.nodes}
    layers = []
    for key, group in {**groups, **functional}.items():
        piece = [node_by_name[n.name] for n in group["nodes"]]
        if "function" in group:
            label = f"{group['path']} (call {group['call'] + 1})"
            api = FUNCTIONS[group["function"]]
        else:
            call = key.rsplit("@", 1)[1] if "@" in key else "0"
            label = f"{group['path']} (call {int(call) + 1})"
            api = SAMPLER_CLASSES.get(group["class"], "localcorr")
        layer = Layer(label, f"{api}, from the .pt2 graph", None, five_d=True)
        try:
            # A module call is the whole group; a function call is a 5-D result and what it came from.
            candidates = [piece] if "function" not in group else _function_candidates(piece)
            problem = Unsupported("no two-tensor call with one 5-D (B, P, P, H, W) result on that line")
            for nodes in candidates:
                try:
                    inputs, outputs = _boundary(nodes)
                    tensors = [n for n in inputs if isinstance(_val(n), torch.Tensor)]
                    if len(tensors) != 2 or len(inputs) != 2 or len(outputs) != 1:
                        raise Unsupported(f"{len(inputs)} input(s) and {len(outputs)} output(s), expected two feature maps and one cost volume")
                    out = outputs[0]
                    sub = _subgraph(new, nodes, inputs, out)
                    attrs, swap, diff = _match(sub, [_val(n).shape for n in inputs], _val(out).shape)
                    break
                except Unsupported as err:
                    problem = err
            else:
                raise problem
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
