"""The accuracy guard: no quantized artifact is valid until its accuracy loss has been measured.

Every FP16 / INT8 graph is run on the validation pairs (:mod:`converters.quantize.accuracy`) and
compared with the FP32 graph it came from. The budget (``--max-epe-increase``) is on the mean EPE
against ground truth:

* ``5%`` (the default): at most 5 % above the FP32 graph's own EPE. Relative, so it means the same
  for a 0.5 px model and a 5 px one; 5 % is about the spread between two training runs of the
  same network, i.e. a loss nobody would notice.
* ``0.2px`` (or a bare number): an absolute budget in pixels.
* ``off``: measure and report, never repair or fail.

The increase must stay *below* the budget (strictly), so ``0`` asks for an unchanged output,
which INT8 can never give. When the full INT8 graph is over budget, :class:`Int8Repair` measures
how much each group of layers contributes (convolutions grouped by module, and each level's
inlined correlation; the graph re-quantized with that group in float) and keeps the most
sensitive groups in float, most sensitive first, until the budget holds. If it cannot hold with
at most half of the layers in float (beyond that INT8 has lost its point), convert fails with
one line saying what was measured.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from converters.quantize.accuracy import FlowEvaluator
from edgeflow.errors import EdgeflowError

DEFAULT_MAX_EPE_INCREASE = "5%"
MAX_FLOAT_FRACTION = 0.5


class AccuracyBudgetError(EdgeflowError):
    """A quantized graph cannot stay within --max-epe-increase; nothing is marked valid."""


@dataclass(frozen=True)
class EpeBudget:
    value: float | None  # None: off
    relative: bool = True

    @classmethod
    def parse(cls, text: str | float | None) -> EpeBudget:
        raw = str(DEFAULT_MAX_EPE_INCREASE if text is None else text).strip().lower()
        if raw in ("off", "none"):
            return cls(None)
        relative = raw.endswith("%")
        number = raw.rstrip("%").removesuffix("px").strip()
        try:
            value = float(number)
        except ValueError:
            raise EdgeflowError(f"--max-epe-increase takes a percentage (5%), pixels (0.2px) or 'off', got {text!r}") from None
        if value < 0 or value != value:
            raise EdgeflowError(f"--max-epe-increase must be >= 0, got {text!r}")
        return cls(value / 100.0 if relative else value, relative)

    def allowed(self, fp32_epe_vs_gt: float | None) -> float | None:
        """The budget in pixels of mean EPE increase, or None when off."""
        if self.value is None:
            return None
        if self.relative:
            if fp32_epe_vs_gt is None:
                raise EdgeflowError("a relative --max-epe-increase needs validation pairs with ground truth; give pixels (0.2px)")
            return self.value * fp32_epe_vs_gt
        return self.value

    def describe(self) -> str:
        if self.value is None:
            return "off"
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}px"


@dataclass
class GuardCheck:
    variant: str
    epe_vs_fp32: float
    epe_vs_gt: float | None
    fp32_epe_vs_gt: float | None
    increase: float | None  # epe_vs_gt - fp32_epe_vs_gt
    allowed: float | None
    passed: bool
    pairs: int

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        text = f"EPE vs FP32 {self.epe_vs_fp32:.3f} px"
        if self.epe_vs_gt is not None:
            text += f", vs GT {self.epe_vs_gt:.3f} px (FP32 {self.fp32_epe_vs_gt:.3f}, {self.increase:+.3f})"
        if self.allowed is not None:
            text += f", budget {self.allowed:.3f} px"
        return text


class AccuracyGuard:
    """Holds the FP32 reference flows and judges candidate graphs against the budget."""

    def __init__(self, evaluator: FlowEvaluator, fp32_path: str | Path, budget: EpeBudget):
        self.evaluator = evaluator
        self.budget = budget
        self.reference = evaluator.flows(fp32_path)
        self.fp32 = evaluator.score(self.reference)

    @property
    def allowed(self) -> float | None:
        return self.budget.allowed(self.fp32["epe_vs_gt"])

    def check(self, path: str | Path, variant: str) -> GuardCheck:
        return self._judge(self.evaluator.score(self.evaluator.flows(path), self.reference), variant)

    def check_split(self, encoder: str | Path, decoder: str | Path, variant: str) -> GuardCheck:
        """The same judgement for the feature-caching path: encoder per frame, then decoder."""
        return self._judge(self.evaluator.score(self.evaluator.split_flows(encoder, decoder), self.reference), variant)

    def _judge(self, score: dict, variant: str) -> GuardCheck:
        """EPE increase over FP32 against ground truth (or vs FP32 without it) within the budget."""
        fp32_gt = self.fp32["epe_vs_gt"]
        increase = score["epe_vs_gt"] - fp32_gt if score["epe_vs_gt"] is not None and fp32_gt is not None else None
        measured = increase if increase is not None else score["epe_vs_fp32"]
        allowed = self.allowed
        passed = allowed is None or max(measured, 0.0) < allowed
        return GuardCheck(variant, score["epe_vs_fp32"], score["epe_vs_gt"], fp32_gt, increase, allowed, passed, score["pairs"])


def node_groups(names: list[str], depth: int = 2) -> dict[str, list[str]]:
    """Group node names by module path (``/decoder/estimators.3/...`` -> ``decoder/estimators.3``).

    Exported names of a module called twice differ by a ``_1`` suffix (the encoder runs on both
    frames with the same weights); they land in one group.
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = [re.sub(r"_\d+$", "", p) for p in name.strip("/").split("/")[:-1]]
        key = "/".join(parts[:depth]) if parts else name
        groups.setdefault(key, []).append(name)
    return groups


@dataclass
class RepairResult:
    check: GuardCheck
    excluded: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # group -> EPE gain when kept float
    tried: int = 0


class Int8Repair:
    """Keeps the most accuracy-sensitive conv groups in float until the guard passes."""

    def __init__(self, quantizer, guard: AccuracyGuard, max_float_fraction: float = MAX_FLOAT_FRACTION, log=None):
        self.quantizer = quantizer
        self.guard = guard
        self.max_float_fraction = max_float_fraction
        self.log = log or (lambda text: None)

    def _try(self, out: Path, exclude: list[str], target: str = "cpu") -> GuardCheck:
        self.quantizer.write(out, target, exclude)
        return self.guard.check(out, "int8")

    def run(self, out: Path, first: GuardCheck | None = None) -> RepairResult:
        first = first or self._try(out, [])
        if first.passed:
            return RepairResult(first)
        budget = self.guard.budget.describe()
        if not first.allowed or first.allowed <= 0:
            raise AccuracyBudgetError(
                f"INT8 cannot meet --max-epe-increase {budget}: any quantization changes the flow "
                f"(measured {first.summary()}); allow an increase such as 5% or use --fp16"
            )
        groups = node_groups(self.quantizer.quantizable)
        total = sum(len(v) for v in groups.values())
        cap = int(self.max_float_fraction * total)
        base = first.increase if first.increase is not None else first.epe_vs_fp32
        gains = {}
        for key, nodes in groups.items():
            check = self._try(out, nodes)
            gains[key] = base - (check.increase if check.increase is not None else check.epe_vs_fp32)
            self.log(f"sensitivity {key}: {gains[key]:+.4f} px when float")
        excluded, tried, check = [], len(groups), first
        for key in sorted(gains, key=gains.get, reverse=True):
            if len(excluded) + len(groups[key]) > cap:
                continue
            excluded += groups[key]
            check = self._try(out, excluded)
            tried += 1
            if check.passed:
                return RepairResult(check, excluded, gains, tried)
        raise AccuracyBudgetError(
            f"INT8 cannot meet --max-epe-increase {budget} (= {first.allowed:.3f} px): with the {len(excluded)} most "
            f"sensitive of {total} layers in float it still measures {check.summary()}; raise the budget, "
            f"calibrate on your own frames (--calib), or use --fp16"
        )
