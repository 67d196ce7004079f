"""Load a model from whatever the user has: a zoo name or a file, identified by its content.

Accepted inputs (``LoadedModel.kind``):

* ``zoo``         a zoo name ("pwc", "pwc-lite", "flownetc-s"), bundled weights when present;
* ``checkpoint``  an edgeflow checkpoint ``{"arch", "config", "state_dict", ...}`` (see
                  :func:`save_checkpoint`), read with ``torch.load(weights_only=True)``;
* ``torchscript`` a ``torch.jit.save`` archive (zip holding ``constants.pkl`` and ``code/``);
* ``export``      a ``torch.export.save`` program (``.pt2`` zip with ``archive_format`` = pt2);
* ``pickle``      a pickled whole ``nn.Module`` (``torch.save(model)``), ONLY with
                  ``trust_pickle=True``.

Why the pickle rule: unpickling runs code chosen by whoever wrote the file. Every other path
here either reads no pickles (TorchScript), uses torch's restricted ``weights_only`` unpickler,
which refuses unknown globals *before* calling anything, or (torch.export ``.pt2``) is inspected
entry by entry first by :func:`inspect_pt2`, because ``torch.export.load`` itself unpickles
``use_pickle`` weights, opaque constants and failed sample inputs with full unpickling and evals
symbolic shape strings; a file that needs more than that is refused unless the user says they
trust it (docs/security.md).

Extensions are not trusted: a ``.pt`` can be any of the file kinds above, so we look inside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import tempfile
import types
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from converters.zoo.base import FlowNetwork
from converters.zoo.registry import ARCHS, MODELS, config_from, get_model, model_from_checkpoint
from edgeflow.artifact import sha256_file
from edgeflow.errors import EdgeflowError, first_line

CHECKPOINT_FORMAT = "edgeflow-checkpoint"
CHECKPOINT_VERSION = 1
#: Name of the JSON record of arch/config stored inside TorchScript and torch.export archives.
METADATA_FILE = "edgeflow.json"
#: First object of a legacy (non-zip) torch.save file.
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model (in eval mode) and where it came from, for the artifact manifest."""

    module: nn.Module
    kind: str  # zoo | checkpoint | torchscript | export | pickle
    source_path: str | None  # the file read; None for a zoo model without bundled weights
    sha256: str | None  # of source_path
    arch: str | None  # "pwc" / "flownetc"; None when the file does not say
    config: dict | None  # JSON-ready config of arch
    name: str | None = None  # zoo name when loaded by name
    warning: str | None = None  # e.g. "randomly initialised"; the CLI should show it

    @property
    def pad_multiple(self) -> int | None:
        """Total stride: input H, W must be multiples of it (None when unknown)."""
        value = getattr(self.module, "pad_multiple", None)
        if isinstance(value, int):
            return value
        if self.arch in ARCHS and self.config is not None:
            return config_from(self.arch, self.config).pad_multiple
        return None


def load_model(spec: str | os.PathLike, trust_pickle: bool = False) -> LoadedModel:
    """Load ``spec`` (a zoo name or a model file); raises EdgeflowError with one actionable line."""
    text = os.fspath(spec)
    if text in MODELS:  # a zoo name wins; write ./pwc to mean a file called "pwc"
        return _load_zoo(text)
    path = Path(text).expanduser()
    if not path.exists():
        if os.sep in text or "." in text:
            raise EdgeflowError(f"model file not found: {text}")
        raise EdgeflowError(f"unknown model {text!r}: not a file, and the zoo has only {', '.join(MODELS)}")
    if path.is_dir():
        raise EdgeflowError(f"{text} is a directory; pass a model file (.pt, .pt2) or a zoo name")
    kind = detect_kind(path)
    if kind == "torchscript":
        return _load_torchscript(path)
    if kind == "export":
        return _load_export(path, trust_pickle)
    return _load_torch_save(path, trust_pickle)


def detect_kind(path: Path) -> str:
    """"torchscript", "export" or "torch_save" (a torch.save / pickle file), by content."""
    if not zipfile.is_zipfile(path):
        return "torch_save"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            archive_format = [n for n in names if n.split("/", 1)[-1] == "archive_format"]
            if archive_format and archive.read(archive_format[0]).strip() == b"pt2":
                return "export"
    except (zipfile.BadZipFile, OSError) as err:
        raise EdgeflowError(f"cannot read {path}: {err}") from None
    inner = {name.split("/", 1)[-1] for name in names if "/" in name}
    if "constants.pkl" in inner and any(name.startswith("code/") for name in inner):
        return "torchscript"
    if any(name.startswith("models/") and name.endswith(".json") for name in inner):
        return "export"
    return "torch_save"


def save_checkpoint(model: nn.Module, path, arch: str | None = None, config=None, extra: dict | None = None) -> Path:
    """Write an edgeflow checkpoint that :func:`load_model` reads back without unpickling code.

    ``arch``/``config`` default to the zoo model's own; ``extra`` (plain data: numbers, strings,
    lists, dicts, tensors) is stored as-is, e.g. training step or metrics. The write is atomic.
    """
    arch = arch or getattr(model, "arch", None)
    if not arch:
        raise EdgeflowError("save_checkpoint needs arch= for a model that is not from the zoo")
    if config is None:
        config = getattr(model, "config", None)
    config_object = config_from(arch, config)
    family = MODELS[arch].arch if arch in MODELS else arch
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": family,
        "config": _plain_config(config_object),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "extra": extra or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _load_zoo(name: str) -> LoadedModel:
    entry = MODELS[name]
    weights = entry.weights
    if weights is not None:  # read by the zoo's one weights loader (converters.zoo.registry.load_weights)
        model = get_model(name)
        return LoadedModel(model, "zoo", str(weights), sha256_file(weights), entry.arch, model.config_dict(), name=name)
    model = get_model(name, pretrained=False).eval()
    warning = f"no bundled weights for {name!r}: the model is randomly initialised and its flow is meaningless"
    return LoadedModel(model, "zoo", None, None, entry.arch, model.config_dict(), name=name, warning=warning)


class _GlobalsRefused(pickle.UnpicklingError):
    """Raised by :class:`_NoGlobalsUnpickler` where a pickle would import (and maybe call) code."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Reads only plain data: any import of a class or function stops it before it happens."""

    def find_class(self, module, name):
        raise _GlobalsRefused(f"{module}.{name}")


def _load_torch_save(path: Path, trust_pickle: bool) -> LoadedModel:
    """A torch.save zip, a legacy torch.save stream, or a plain pickle."""
    if not zipfile.is_zipfile(path):
        # Peek at the first pickle without importing anything: a legacy torch.save file starts
        # with a magic number; anything else is a plain pickle (or not a model file at all).
        try:
            with open(path, "rb") as handle:
                first = _NoGlobalsUnpickler(handle).load()
        except _GlobalsRefused:
            first = None
        except Exception:
            raise EdgeflowError(f"{path} is not a PyTorch model file (not a zip archive, not a pickle)") from None
        if first != _LEGACY_TORCH_MAGIC:
            if not trust_pickle:
                raise EdgeflowError(_refusal(path))
            return _load_trusted_pickle(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():
            raise EdgeflowError(f"cannot read {path}: {_weights_only_reason(err)}") from None
        # The restricted unpickler met a global it will not import: arbitrary Python objects.
        if not trust_pickle:
            raise EdgeflowError(_refusal(path)) from None
        return _load_trusted_pickle(path)
    except Exception as err:  # truncated zip, corrupt records, ...
        raise EdgeflowError(f"cannot read {path} as a PyTorch file: {first_line(err)}") from None
    return _from_checkpoint(obj, path)


def _refusal(path: Path) -> str:
    return (
        f"refusing to unpickle {path}: it holds Python objects, and unpickling can execute arbitrary "
        "code; re-save it as an edgeflow checkpoint (converters.load.save_checkpoint) or pass "
        "--trust-pickle if you trust the file"
    )


def _weights_only_reason(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[index + 1] if index + 1 < len(lines) else line)
    return lines[0] if lines else type(err).__name__


def _from_checkpoint(obj, path: Path) -> LoadedModel:
    model = model_from_checkpoint(obj, path)  # the checks bundled zoo weights go through too
    return LoadedModel(model, "checkpoint", str(path), sha256_file(path), model.arch, model.config_dict())


def _load_trusted_pickle(path: Path) -> LoadedModel:
    """The user vouched for the file: full unpickling (torch zip, legacy torch, or plain pickle)."""
    try:
        legacy_or_zip = zipfile.is_zipfile(path)
        if not legacy_or_zip:
            with open(path, "rb") as handle:
                try:
                    legacy_or_zip = _NoGlobalsUnpickler(handle).load() == _LEGACY_TORCH_MAGIC
                except _GlobalsRefused:
                    legacy_or_zip = False
        if legacy_or_zip:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with open(path, "rb") as handle:
                obj = pickle.load(handle)
    except Exception as err:
        raise EdgeflowError(f"cannot unpickle {path}: {first_line(err)}") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        return _from_checkpoint(obj, path)
    if not isinstance(obj, nn.Module):
        raise EdgeflowError(f"{path} unpickles to a {type(obj).__name__}, not an nn.Module")
    obj.eval()
    arch = config = None
    if isinstance(obj, FlowNetwork):
        arch, config = obj.arch, obj.config_dict()
    return LoadedModel(obj, "pickle", str(path), sha256_file(path), arch, config)


def _load_torchscript(path: Path) -> LoadedModel:
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch.jit.load warns that TorchScript is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:
        raise EdgeflowError(f"cannot load TorchScript archive {path}: {first_line(err)}") from None
    arch, config = _read_metadata(extra.get(METADATA_FILE))
    return LoadedModel(module.eval(), "torchscript", str(path), sha256_file(path), arch, config)


def _load_export(path: Path, trust_pickle: bool = False) -> LoadedModel:
    """A torch.export program, inspected before torch sees it.

    ``torch.export.load`` is not pickle-free: weights or constants marked ``use_pickle``, legacy
    weight files, opaque constants and sample inputs that fail the restricted unpickler are all
    read with full unpickling, symbolic shapes are parsed with ``sympy.sympify`` (which evals its
    string) and ``data/aotinductor/`` holds native libraries. So the archive is read into memory
    once, checked by :func:`inspect_pt2` and the *same bytes* handed to torch (no window for the
    file to change between the check and the load).
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EdgeflowError(f"cannot read {path}: {err.strerror or err}") from None
    problems = inspect_pt2(data)
    if problems and not trust_pickle:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EdgeflowError(
            f"refusing to load {path}: the torch.export archive holds {problems[0]}{more}, and loading it can "
            "execute arbitrary code; re-export it with plain tensors (no tensor subclasses, custom objects or "
            "compiled code) or pass --trust-pickle if you trust the file"
        )
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(data), extra_files=extra)
        module = program.module()
    except Exception as err:
        raise EdgeflowError(f"cannot load torch.export program {path}: {first_line(err)}") from None
    arch, config = _read_metadata(extra.get(METADATA_FILE))
    _freeze_mode(module)
    digest = hashlib.sha256(data).hexdigest()
    return LoadedModel(module, "export", str(path), digest, arch, config)


def _freeze_mode(module: nn.Module) -> None:
    """An exported module's graph was captured in eval mode and ``torch.export`` makes its
    ``.eval()``/``.train()`` raise NotImplementedError; callers (convert, eval) treat every model
    alike and call ``.eval()``, so eval becomes the no-op it is and train mode a one-line refusal."""

    def _train(self, mode: bool = True):
        if mode:
            raise EdgeflowError("a torch.export program cannot be trained; export it from the PyTorch model after training")
        return self

    def _eval(self):
        return self

    for sub in module.modules():  # the flag callers read (the ONNX exporter restores it afterwards)
        sub.training = False
    module.train = types.MethodType(_train, module)
    module.eval = types.MethodType(_eval, module)


#: Entries a plain ``torch.export.save`` archive holds (relative to its root folder). Anything else,
#: e.g. ``data/aotinductor/`` (compiled native libraries) or legacy ``data/weights/<model>.pt``
#: pickles, is refused without --trust-pickle.
_PT2_PLAIN = [
    re.compile(p)
    for p in (
        r"archive_format", r"archive_version", r"byteorder", r"\.data/version", r"\.data/serialization_id",
        r"extra/[^/]+", r"models/[^/]+\.json", r"data/weights/[^/]+_weights_config\.json", r"data/weights/weight_\d+",
        r"data/constants/[^/]+_constants_config\.json", r"data/constants/tensor_\d+", r"data/sample_inputs/[^/]+\.pt",
    )
]
#: Names ``torch.export`` writes into symbolic shape expressions: sympy's ``srepr`` form
#: (``Mul(Integer(8), Symbol('s39', positive=True, integer=True))``), its own sympy_functions and
#: the printer's names. Torch passes these strings to ``sympy.sympify``, which evals them: a name
#: outside this list (``__import__``, ``open``, ``exec``, ``lambda``) would be executed.
_SYMPY_NAMES = frozenset(
    "FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift PowByNatural "
    "FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt "
    "RoundDecimal ToFloat Identity Max Min Abs Piecewise floor ceiling sqrt Eq Ne Lt Le Gt Ge And Or Not Xor "
    "True False oo zoo nan pi E Integer Rational Float Mul Add Pow ITE Symbol Dummy StrictLessThan StrictGreaterThan "
    "LessThan GreaterThan Equality Unequality BooleanTrue BooleanFalse Tuple Half One Zero NegativeOne Infinity "
    "NegativeInfinity positive negative nonnegative nonpositive integer real finite infinite zero nonzero even odd "
    "rational commutative".split()
)
_SYMBOL = re.compile(r"[a-z]+\d+")
_QUOTED_SYMBOL = re.compile(r"'[a-z]+\d+'")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPR_CHARS = re.compile(r"[A-Za-z0-9_\s+\-*/%(),.<>=!&|~^]*")
#: Upper bound on the JSON and pickle entries inspected in memory (a 2 GB models/*.json is an attack).
_PT2_MAX_METADATA = 1 << 30


def inspect_pt2(data: bytes) -> list[str]:
    """What in a ``torch.export.save`` archive would run code when loaded; [] when nothing would.

    Reads only zip directory entries, JSON and (for sample inputs) torch's restricted
    ``weights_only`` unpickler, which imports nothing it does not allow-list. Never unpickles.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        return [f"a damaged zip archive ({err})"]
    roots = {info.filename.split("/", 1)[0] for info in infos}
    if len(roots) != 1 or any("/" not in info.filename for info in infos):
        return ["entries outside one archive folder"]
    problems: list[str] = []
    entries = {info.filename.split("/", 1)[1]: info for info in infos if not info.is_dir()}
    for name, info in entries.items():
        if name.startswith("data/aotinductor/") or name.endswith((".so", ".dll", ".dylib")):
            problems.append(f"compiled native code ({name})")
        elif not any(p.fullmatch(name) for p in _PT2_PLAIN):
            problems.append(f"an entry torch may unpickle or execute ({name})")
        elif (name.endswith(".json") or name.startswith("data/sample_inputs/")) and info.file_size > _PT2_MAX_METADATA:
            problems.append(f"an oversized entry ({name}, {info.file_size} bytes)")
    if problems:
        return problems

    root = roots.pop()
    for name in entries:
        if name.endswith(("_weights_config.json", "_constants_config.json")):
            config = _read_json_entry(archive, f"{root}/{name}", problems)
            table = config.get("config") if isinstance(config, dict) else None
            if not isinstance(table, dict):
                if config is not None:
                    problems.append(f"a malformed {name}")
                continue
            for fqn, meta in table.items():
                if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
                    problems.append(f"a pickled entry ({name}: {fqn})")
                elif not re.fullmatch(r"(weight|tensor)_\d+", str(meta.get("path_name", ""))):
                    problems.append(f"a custom or opaque object ({name}: {fqn})")
        elif name.startswith("models/"):
            program = _read_json_entry(archive, f"{root}/{name}", problems)
            for expr in _expr_strings(program):
                if not _safe_sympy(expr):
                    problems.append(f"a symbolic shape sympy would execute ({name}: {expr[:40]!r})")
        elif name.startswith("data/sample_inputs/"):
            # torch retries a failed weights_only load with full unpickling: it must pass the restricted one.
            try:
                torch.load(io.BytesIO(archive.read(f"{root}/{name}")), map_location="cpu", weights_only=True)
            except Exception:
                problems.append(f"sample inputs that need full unpickling ({name})")
    return problems


def _read_json_entry(archive: zipfile.ZipFile, name: str, problems: list[str]):
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError, zipfile.BadZipFile, OSError, EOFError) as err:
        problems.append(f"an unreadable {name.split('/', 1)[1]} ({type(err).__name__})")
        return None


def _expr_strings(node):
    """Every ``expr_str`` value in a serialized program (iterative: hostile JSON can be deep)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expr_str":
                    yield value if isinstance(value, str) else repr(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _safe_sympy(expr: str) -> bool:
    """True for arithmetic on shape symbols (``s0 + 2*s1``, ``Max(1, s0)``, srepr form) and nothing else."""
    bare = _QUOTED_SYMBOL.sub("0", expr)  # Symbol('s39', ...): the only quoted text allowed is a symbol name
    if not _EXPR_CHARS.fullmatch(bare) or "__" in bare or re.search(r"(?<!\d)\.|\.(?!\d)", bare):
        return False
    return all(_SYMBOL.fullmatch(word) or word in _SYMPY_NAMES for word in _IDENTIFIER.findall(bare))


def metadata_json(model: nn.Module) -> str:
    """JSON to store as ``edgeflow.json`` in TorchScript (``_extra_files``) or .pt2 (``extra_files``)
    archives, so that loading them recovers arch, config and pad_multiple."""
    return json.dumps({"arch": model.arch, "config": model.config_dict()})


def _read_metadata(text) -> tuple[str | None, dict | None]:
    if not text:
        return None, None
    try:
        data = json.loads(text)
        arch, config = data.get("arch"), data.get("config")
        if arch in ARCHS and isinstance(config, dict):
            return arch, config
    except (ValueError, AttributeError):
        pass
    return None, None


def _plain_config(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))
