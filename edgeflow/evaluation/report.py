"""The result of ``edgeflow eval``: per-pair scores, folded per sequence, overall and highlights.

Two averages exist over a data set (see :mod:`edgeflow.flow.metrics`): ``pixel`` weighs every
valid pixel equally (the Sintel benchmark's EPE, KITTI's Fl-all) and ``pair`` weighs every image
pair equally (RAFT-style mean EPE over frames). The JSON holds both; the printed table shows the
one asked for. Times are milliseconds per pair for the method call alone.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from edgeflow.errors import InputError
from edgeflow.flow import FlowMetricsAggregator

SCHEMA = "edgeflow-eval/1"
AVERAGES = ("pixel", "pair")
OVERALL = "overall"
_COLUMNS = (("EPE", "epe"), ("1px", "1px"), ("3px", "3px"), ("5px", "5px"), ("Fl-all", "fl_all"))
LEGEND = ("EPE: mean end-point error, px (lower is better). 1px/3px/5px: % of valid pixels with EPE below\n"
          "1/3/5 px (higher is better). Fl-all: % of valid pixels with EPE > 3 px and > 5% of |gt| (lower is\n"
          "better). ms/pair: median time of one call. Definitions: docs/flow.md, docs/eval.md.")


@dataclass
class PairRecord:
    name: str
    sequence: str
    height: int
    width: int
    results: dict  # method -> {"epe", "1px", "3px", "5px", "fl_all", "n_valid", "ms"}


class _Scope:
    """Running metrics and times of one method over one group of pairs."""

    def __init__(self):
        self.metrics = FlowMetricsAggregator()
        self.times: list[float] = []

    def add(self, result: dict) -> None:
        self.metrics.add_result(result)
        self.times.append(float(result["ms"]))

    def summary(self) -> dict:
        out = self.metrics.summary()
        out["ms_median"] = statistics.median(self.times) if self.times else math.nan
        out["ms_mean"] = statistics.fmean(self.times) if self.times else math.nan
        return out


def _clean(value):
    """JSON has no NaN/inf: write null instead (json.dumps would emit invalid ``NaN``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


class EvalReport:
    def __init__(self, dataset, methods, data_label: str | None = None):
        self.data = {"path": data_label or dataset.root, "layout": dataset.layout, "options": dict(dataset.options)}
        self.methods = [{"name": m.name, "kind": m.kind, **m.info} for m in methods]
        self.method_names = [m.name for m in methods]
        self.highlight_names = tuple(dataset.highlights)
        self.pairs: list[PairRecord] = []
        self._scopes: dict[tuple[str, str], dict[str, _Scope]] = {}

    # -- accumulation ----------------------------------------------------------------------------
    def _scope(self, kind: str, label: str) -> dict[str, _Scope]:
        key = (kind, label)
        if key not in self._scopes:
            self._scopes[key] = {name: _Scope() for name in self.method_names}
        return self._scopes[key]

    def add_pair(self, pair, results: dict) -> None:
        self.pairs.append(PairRecord(pair.name, pair.sequence, int(pair.flow.shape[0]), int(pair.flow.shape[1]), results))
        groups = [("sequence", pair.sequence), ("overall", OVERALL)]
        if pair.sequence in self.highlight_names:
            groups.append(("highlight", pair.sequence))
        for kind, label in groups:
            scope = self._scope(kind, label)
            for name, result in results.items():
                scope[name].add(result)

    # -- queries ---------------------------------------------------------------------------------
    @property
    def sequences(self) -> list[str]:
        return [label for kind, label in self._scopes if kind == "sequence"]

    @property
    def highlights(self) -> list[str]:
        return [label for kind, label in self._scopes if kind == "highlight"]

    def summary(self, method: str, scope: str = OVERALL, kind: str | None = None) -> dict:
        """Metrics of ``method`` over ``scope`` (``"overall"``, a sequence or a highlight)."""
        kind = kind or ("overall" if scope == OVERALL else "highlight" if scope in self.highlights else "sequence")
        if (kind, scope) not in self._scopes:
            raise InputError(f"no results for {scope!r}")
        return self._scopes[(kind, scope)][method].summary()

    def metric(self, method: str, key: str = "epe", scope: str = OVERALL, average: str = "pixel") -> float:
        return self.summary(method, scope)["per_pixel" if average == "pixel" else "per_pair"][key]

    # -- output ----------------------------------------------------------------------------------
    def to_dict(self, average: str = "pixel") -> dict:
        def block(kind, label):
            return {name: s.summary() for name, s in self._scopes[(kind, label)].items()}

        data = {**self.data, "n_pairs": len(self.pairs), "sequences": self.sequences}
        return _clean({
            "schema": SCHEMA,
            "average": average,
            "data": data,
            "methods": self.methods,
            "overall": block("overall", OVERALL) if self.pairs else {},
            "sequences": {label: block("sequence", label) for label in self.sequences},
            "highlights": {label: block("highlight", label) for label in self.highlights},
            "pairs": [
                {"name": p.name, "sequence": p.sequence, "height": p.height, "width": p.width, "results": p.results}
                for p in self.pairs
            ],
        })

    def write_json(self, path, average: str = "pixel") -> Path:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_dict(average), indent=2) + "\n")
        except OSError as err:
            raise InputError(f"cannot write {path}: {err.strerror or err}") from None
        return path

    def format_table(self, average: str = "pixel", max_sequences: int = 40) -> str:
        """Rows grouped by scope (sequences, highlights, overall), one row per method in each."""
        if average not in AVERAGES:
            raise InputError(f"unknown average {average!r}; choose pixel or pair")
        which = "per_pixel" if average == "pixel" else "per_pair"
        groups = []
        sequences = self.sequences
        if len(sequences) > 1 and len(sequences) <= max_sequences:
            # A highlighted sequence gets its own block below; do not print it twice.
            groups += [("sequence", s) for s in sequences if s not in self.highlights]
        groups += [("highlight", h) for h in self.highlights]
        groups.append(("overall", OVERALL))
        width = min(32, max([len("sequence")] + [len(label) for _, label in groups]))
        mwidth = max([len("method")] + [len(m) for m in self.method_names])
        header = f"{'sequence':<{width}}  {'method':<{mwidth}}  {'pairs':>5}" + "".join(
            f"  {title:>7}" for title, _ in _COLUMNS) + f"  {'ms/pair':>8}"
        lines = [header, "-" * len(header)]
        for kind, label in groups:
            if (kind, label) not in self._scopes:
                continue
            shown = label if len(label) <= width else label[: width - 3] + "..."
            for i, name in enumerate(self.method_names):
                s = self._scopes[(kind, label)][name].summary()
                metrics = s[which]
                row = f"{shown if i == 0 else '':<{width}}  {name:<{mwidth}}  {s['n_pairs']:>5}"
                row += "".join(f"  {_fmt(metrics[key], 2 if key == 'epe' else 1):>7}" for _, key in _COLUMNS)
                row += f"  {_fmt(s['ms_median'], 1):>8}"
                lines.append(row)
            if kind != "overall":
                lines.append("")
        if len(sequences) > max_sequences:
            lines.append(f"({len(sequences)} sequences: per-sequence results are in the --json output)")
        return "\n".join(lines)

    def format_epe_matrix(self, average: str = "pixel", max_sequences: int = 40) -> str:
        """EPE only, methods as columns: the side-by-side summary."""
        which = "per_pixel" if average == "pixel" else "per_pair"
        rows = self.sequences if 1 < len(self.sequences) <= max_sequences else []
        rows = [r for r in rows if r not in self.highlights]
        rows = [("sequence", r) for r in rows] + [("highlight", h) for h in self.highlights] + [("overall", OVERALL)]
        width = min(32, max([len("EPE (px)")] + [len(label) for _, label in rows]))
        cols = [max(8, len(m)) for m in self.method_names]
        lines = [f"{'EPE (px)':<{width}}" + "".join(f"  {m:>{c}}" for m, c in zip(self.method_names, cols))]
        for kind, label in rows:
            if (kind, label) not in self._scopes:
                continue
            shown = label if len(label) <= width else label[: width - 3] + "..."
            values = [self._scopes[(kind, label)][m].summary()[which]["epe"] for m in self.method_names]
            lines.append(f"{shown:<{width}}" + "".join(f"  {_fmt(v):>{c}}" for v, c in zip(values, cols)))
        return "\n".join(lines)
