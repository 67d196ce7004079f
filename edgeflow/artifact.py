"""The artifact directory: the contract between ``edgeflow convert`` and the runtime.

A directory holding the model file(s), ``manifest.json`` (what the files are, how to feed them,
the sha256 of every file) and ``report.json`` (parity, accuracy and latency numbers). The runtime
trusts nothing the manifest does not vouch for: :class:`Manifest` is the one typed description
both the writer and the reader go through, so a manifest the writer could not have produced
(wrong types, out-of-range numbers, paths outside the folder, files not hashed) is a one-line
:class:`ArtifactError` on open, never a traceback or an allocation of exabytes later on.

What "vouched for" means on open (:meth:`Artifact.open`):

* every path the manifest names (``files``, ``graphs``, ``split``, TensorRT engine records, and
  the external-data files an ONNX graph references) is relative, stays inside the folder, is
  reached through no symlink, is a regular file and is listed in ``files`` with its size and
  sha256, which are checked;
* numbers are of the right type and in range (``pad_multiple`` an int in 1..256, resolution
  positive and bounded), strings are strings; the JSON itself is bounded in size and depth.

Writing is atomic and never deletes what edgeflow did not write: files are staged in a fresh
sibling folder (``mkdtemp``: unpredictable name, mode 0700) and swapped in at the end, replacing
only an empty folder or a previous artifact (recognized by its manifest, holding nothing the
manifest does not list); anything else needs ``force=True`` (``--force``) and the error says what
would be replaced (:func:`check_output_dir`).

Other tools add sections: unknown top-level sections (``input_reference``, ``source``,
``quantization``, ...) are carried unchanged in :attr:`Manifest.extras`, and unknown keys of
``preprocessing`` (input conventions) in :attr:`Preprocessing.extras`; both must be plain JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edgeflow.errors import ArtifactError, first_line
from edgeflow.outputs import current_umask

FORMAT = "edgeflow-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REPORT = "report.json"
#: Frames are padded to a multiple of this; networks have total strides of 8..128.
MAX_PAD_MULTIPLE = 256
#: Largest export resolution side (16K); a manifest claiming more is corrupt.
MAX_RESOLUTION_SIDE = 16384
#: manifest.json and report.json are small (kB); a larger one is not ours.
MAX_JSON_BYTES = 16 << 20
#: Nesting of our JSON is < 10 levels; Python's parser recurses per level.
MAX_JSON_DEPTH = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: How an ONNX graph names an external-data file: TensorProto.external_data is a list of
#: StringStringEntryProto(key=1, value=2), so the entry {"location": V} is encoded as
#: 0x0a 0x08 "location" 0x12 <varint len(V)> V. Matching these bytes over-approximates the set of
#: referenced files (a false match can only refuse a graph, never accept an unlisted file), and
#: needs no protobuf library on the device.
_LOCATION_KEY = b"\x0a\x08location\x12"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- JSON, bounded ---------------------------------------------------------------------------------
def _depth_ok(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Nesting depth of JSON text without parsing it (brackets inside strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def read_json_file(path: Path, what: str):
    """Parse a small JSON file; any problem is one ArtifactError line naming the file."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise ArtifactError(f"{path} is a symlink; an artifact holds its own files: copy the real file in")
        if info.st_size > MAX_JSON_BYTES:
            raise ArtifactError(f"{path} is {info.st_size} bytes, more than any {what} edgeflow writes; re-run `edgeflow convert`")
        raw = path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArtifactError(f"{path} is not UTF-8 text (byte {err.start}); re-run `edgeflow convert`") from None
    if not _depth_ok(text):
        raise ArtifactError(f"{path} nests deeper than {MAX_JSON_DEPTH} levels; it is not an edgeflow {what}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ArtifactError(f"{path} is not valid JSON ({first_line(err)[:120]}); re-run `edgeflow convert`") from None


# -- the typed manifest ----------------------------------------------------------------------------
class _Invalid(Exception):
    """A manifest field is wrong; turned into one ArtifactError line naming the manifest."""


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _expect(cond: bool, where: str, what: str, value) -> None:
    if not cond:
        raise _Invalid(f"{where} must be {what}, got {_show(value)}")


def _dict(value, where: str) -> dict:
    _expect(isinstance(value, dict), where, "an object", value)
    return value


def _list(value, where: str) -> list:
    _expect(isinstance(value, list), where, "a list", value)
    return value


def _str(value, where: str, optional: bool = False) -> str | None:
    if optional and value is None:
        return None
    _expect(isinstance(value, str), where, "a string", value)
    return value


def _int(value, where: str, lo: int, hi: int) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool), where, f"an integer in {lo}..{hi}", value)
    _expect(lo <= value <= hi, where, f"an integer in {lo}..{hi}", value)
    return value


def _number(value, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    _expect(ok, where, "a finite number", value)
    return value


def safe_relpath(name, where: str) -> str:
    """A file name inside the artifact: relative, normalized, no ``..``, no backslash or NUL."""
    _expect(isinstance(name, str) and name != "", where, "a file name", name)
    pure = PurePosixPath(name)
    inside = (not pure.is_absolute() and ".." not in pure.parts and "\\" not in name and "\0" not in name
              and not re.match(r"^[A-Za-z]:", name) and str(pure) == name and name not in (".", MANIFEST, REPORT))
    if not inside:
        raise _Invalid(f"{where} names a file outside the artifact ({_show(name)})")
    return name


@dataclass(frozen=True)
class FileEntry:
    """One file of the artifact: its sha256, size and role (graph name) if it has one."""

    sha256: str
    bytes: int
    role: str | None = None

    @classmethod
    def from_dict(cls, value, where: str) -> "FileEntry":
        value = _dict(value, where)
        digest = value.get("sha256")
        _expect(isinstance(digest, str) and _SHA256.fullmatch(digest) is not None, f"{where}.sha256", "64 hex digits", digest)
        size = _int(value.get("bytes"), f"{where}.bytes", 0, 1 << 50)
        return cls(digest, size, _str(value.get("role"), f"{where}.role", optional=True))

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "bytes": self.bytes, "role": self.role}


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, shape (ints, strings for dynamic axes), numpy dtype name."""

    name: str
    shape: tuple
    dtype: str

    @classmethod
    def from_dict(cls, value, where: str) -> "TensorSpec":
        value = _dict(value, where)
        shape = _list(value.get("shape"), f"{where}.shape")
        _expect(len(shape) <= 8, f"{where}.shape", "at most 8 dims", shape)
        for i, dim in enumerate(shape):
            ok = isinstance(dim, str) or dim is None or (isinstance(dim, int) and not isinstance(dim, bool) and -1 <= dim <= 1 << 20)
            _expect(ok, f"{where}.shape[{i}]", "an integer size or a name", dim)
        return cls(_str(value.get("name"), f"{where}.name"), tuple(shape), _str(value.get("dtype"), f"{where}.dtype"))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Preprocessing:
    """How frames are fed: colour order, layout, value range and the padding multiple.

    ``extras`` carries keys other tools add (input conventions) unchanged; they must be plain JSON.
    """

    color_order: str = "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    input_range: tuple = (0, 255)
    pad_multiple: int = 1
    pad_mode: str = "edge"
    extras: dict = field(default_factory=dict)

    _KNOWN = ("color_order", "layout", "dtype", "input_range", "pad_multiple", "pad_mode")

    @classmethod
    def from_dict(cls, value, where: str = "preprocessing") -> "Preprocessing":
        value = _dict(value, where)
        pre = cls()
        rng = value.get("input_range", list(pre.input_range))
        rng = _list(rng, f"{where}.input_range")
        _expect(len(rng) == 2, f"{where}.input_range", "[low, high]", rng)
        low, high = (_number(v, f"{where}.input_range") for v in rng)
        _expect(low < high, f"{where}.input_range", "[low, high] with low < high", rng)
        return cls(
            color_order=_str(value.get("color_order", pre.color_order), f"{where}.color_order"),
            layout=_str(value.get("layout", pre.layout), f"{where}.layout"),
            dtype=_str(value.get("dtype", pre.dtype), f"{where}.dtype"),
            input_range=(low, high),
            pad_multiple=_int(value.get("pad_multiple", 1), f"{where}.pad_multiple", 1, MAX_PAD_MULTIPLE),
            pad_mode=_str(value.get("pad_mode", pre.pad_mode), f"{where}.pad_mode"),
            extras={k: v for k, v in value.items() if k not in cls._KNOWN},
        )

    def to_dict(self) -> dict:
        return {"color_order": self.color_order, "layout": self.layout, "dtype": self.dtype,
                "input_range": list(self.input_range), "pad_multiple": self.pad_multiple, "pad_mode": self.pad_mode,
                **self.extras}


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``, typed and validated; :meth:`to_dict` is what the writer stores.

    Paths (``files`` keys, ``graphs`` values, ``split`` and TensorRT engine records) are checked
    to be inside the folder and listed in ``files``; the file system checks (symlinks, sizes,
    hashes, external data) are :meth:`Artifact.verify`'s.
    """

    model: dict
    files: dict  # name -> FileEntry
    graphs: dict  # role -> file name
    inputs: tuple = ()
    outputs: tuple = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    precision: str = "fp32"
    resolution: tuple | None = None
    split: dict | None = None
    plugins: tuple = ()
    tensorrt: dict | None = None
    valid: bool = False
    invalid_reason: str | None = None
    format_version: int = FORMAT_VERSION
    #: Top-level sections this module does not interpret (source, tools, parity, correlation,
    #: quantization, accuracy, pruning, input_reference, postprocessing, ...): carried unchanged.
    extras: dict = field(default_factory=dict)

    _KNOWN = ("format", "format_version", "model", "files", "graphs", "inputs", "outputs", "preprocessing", "precision",
              "resolution", "split", "plugins", "tensorrt", "valid", "invalid_reason")

    @classmethod
    def from_dict(cls, data) -> "Manifest":
        """Validate ``data`` (parsed JSON); raises ``_Invalid`` with the field and the problem."""
        data = _dict(data, "the manifest")
        _expect(data.get("format") == FORMAT, "format", repr(FORMAT), data.get("format"))
        version = data.get("format_version")
        _expect(isinstance(version, int) and not isinstance(version, bool) and version >= 1, "format_version",
                "a positive integer", version)
        model = _dict(data.get("model", {}), "model")
        for key in ("name", "arch"):
            _str(model.get(key), f"model.{key}", optional=True)
        if model.get("config") is not None:
            _dict(model["config"], "model.config")
        files = {}
        for name, meta in _dict(data.get("files"), "files").items():
            files[safe_relpath(name, "files")] = FileEntry.from_dict(meta, f"files[{_show(name)}]")
        _expect(bool(files), "files", "a non-empty object", data.get("files"))
        graphs = {}
        for role, name in _dict(data.get("graphs", {}), "graphs").items():
            graphs[role] = _listed(name, f"graphs.{role}", files)
        inputs = tuple(TensorSpec.from_dict(v, f"inputs[{i}]") for i, v in enumerate(_list(data.get("inputs", []), "inputs")))
        outputs = tuple(TensorSpec.from_dict(v, f"outputs[{i}]") for i, v in enumerate(_list(data.get("outputs", []), "outputs")))
        resolution = data.get("resolution")
        if resolution is not None:
            _expect(isinstance(resolution, list) and len(resolution) == 2, "resolution", "[width, height]", resolution)
            resolution = tuple(_int(v, "resolution", 1, MAX_RESOLUTION_SIDE) for v in resolution)
        split = data.get("split")
        if split is not None:
            split = _dict(split, "split")
            for role in ("encoder", "decoder"):
                _listed(split.get(role), f"split.{role}", files)
            if split.get("levels") is not None:
                _int(split["levels"], "split.levels", 1, 16)
        plugins = _list(data.get("plugins") or [], "plugins")
        for i, plugin in enumerate(plugins):
            for key in ("name", "namespace", "version"):
                _str(_dict(plugin, f"plugins[{i}]").get(key), f"plugins[{i}].{key}")
        tensorrt = data.get("tensorrt")
        if tensorrt is not None:
            tensorrt = _dict(tensorrt, "tensorrt")
            for role, rec in _dict(tensorrt.get("engines", {}), "tensorrt.engines").items():
                rec = _dict(rec, f"tensorrt.engines.{role}")
                for key in ("file", "onnx"):
                    if rec.get(key) is not None:
                        _listed(rec[key], f"tensorrt.engines.{role}.{key}", files)
            if tensorrt.get("plugin_library") is not None:  # a library found on the device, never a path
                name = _str(tensorrt["plugin_library"], "tensorrt.plugin_library")
                _expect("/" not in name and "\\" not in name, "tensorrt.plugin_library", "a bare file name", name)
        valid = data.get("valid", False)
        _expect(isinstance(valid, bool), "valid", "true or false", valid)
        extras = {k: v for k, v in data.items() if k not in cls._KNOWN}
        return cls(
            model=model, files=files, graphs=graphs, inputs=inputs, outputs=outputs,
            preprocessing=Preprocessing.from_dict(data.get("preprocessing", {})),
            precision=_str(data.get("precision", "fp32"), "precision"), resolution=resolution, split=split,
            plugins=tuple(plugins), tensorrt=tensorrt, valid=valid,
            invalid_reason=_str(data.get("invalid_reason"), "invalid_reason", optional=True),
            format_version=version, extras=extras,
        )

    def to_dict(self) -> dict:
        """The JSON form (what ``manifest.json`` holds; ``Artifact.manifest`` for readers)."""
        out = {"format": FORMAT, "format_version": self.format_version, "model": self.model}
        if self.inputs or self.outputs:
            out["inputs"] = [t.to_dict() for t in self.inputs]
            out["outputs"] = [t.to_dict() for t in self.outputs]
        out["preprocessing"] = self.preprocessing.to_dict()
        out["precision"] = self.precision
        if self.resolution is not None:
            out["resolution"] = list(self.resolution)
        out["split"] = self.split
        out["plugins"] = list(self.plugins)
        out.update(self.extras)
        out["tensorrt"] = self.tensorrt
        out["files"] = {name: entry.to_dict() for name, entry in self.files.items()}
        out["graphs"] = dict(self.graphs)
        out["valid"] = self.valid
        if self.invalid_reason is not None:
            out["invalid_reason"] = self.invalid_reason
        return out

    @property
    def referenced(self) -> dict:
        """Every file name the manifest points at, with where it does (for messages)."""
        refs = {name: f"graphs.{role}" for role, name in self.graphs.items()}
        for role in ("encoder", "decoder"):
            if self.split and self.split.get(role):
                refs.setdefault(self.split[role], f"split.{role}")
        for role, rec in ((self.tensorrt or {}).get("engines") or {}).items():
            for key in ("file", "onnx"):
                if rec.get(key):
                    refs.setdefault(rec[key], f"tensorrt.engines.{role}.{key}")
        return refs


def _listed(name, where: str, files: dict) -> str:
    name = safe_relpath(name, where)
    if name not in files:
        raise _Invalid(f"{where} names {name}, which is not listed (with its sha256) in files")
    return name


def parse_manifest(data, path: Path | str = MANIFEST) -> Manifest:
    """:meth:`Manifest.from_dict` with the one-line ArtifactError the CLI shows."""
    try:
        return Manifest.from_dict(data)
    except _Invalid as err:
        raise ArtifactError(f"{path}: {err}; re-run `edgeflow convert`") from None


# -- the file system side --------------------------------------------------------------------------
def _lstat_inside(root: Path, name: str):
    """lstat of root/name after checking that no component below ``root`` is a symlink."""
    path = root
    for part in PurePosixPath(name).parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise ArtifactError(f"{path} is a symlink; an artifact holds its own files (a link could point anywhere): "
                                "copy the real file in or re-run `edgeflow convert`")
    return info


def onnx_external_data(path: Path) -> list[str]:
    """The external-data locations an ONNX file references (see ``_LOCATION_KEY``)."""
    found = []
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return found
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            pos = data.find(_LOCATION_KEY)
            while pos >= 0:
                cur, length, shift = pos + len(_LOCATION_KEY), 0, 0
                while cur < len(data) and shift < 35:
                    byte = data[cur]
                    length |= (byte & 0x7F) << shift
                    cur, shift = cur + 1, shift + 7
                    if not byte & 0x80:
                        break
                value = data[cur:cur + min(length, 4096)]
                try:
                    found.append(value.decode("utf-8"))
                except UnicodeDecodeError:
                    found.append(repr(value))
                pos = data.find(_LOCATION_KEY, pos + 1)
    return found


@dataclass
class Artifact:
    """An opened, verified artifact directory.

    ``manifest`` is the validated manifest as a dict (what every consumer reads); ``meta`` the
    same as a typed :class:`Manifest`.
    """

    root: Path
    manifest: dict
    report: dict = field(default_factory=dict)
    meta: Manifest | None = None

    @classmethod
    def open(cls, path: str | Path, verify: bool = True, allow_invalid: bool = False) -> "Artifact":
        root = Path(path)
        if not root.exists():
            raise ArtifactError(f"no artifact at {root}: create one with `edgeflow convert MODEL --out {root}`")
        if root.is_file():
            hint = " (a bare model file)" if root.suffix in (".onnx", ".engine", ".plan") else ""
            raise ArtifactError(
                f"{root} is a file{hint}, not an artifact directory: run `edgeflow convert` to make one "
                "with a manifest the runtime can verify"
            )
        manifest_path = root / MANIFEST
        if not manifest_path.is_file() and not manifest_path.is_symlink():
            raise ArtifactError(f"{root} has no {MANIFEST}: it is not an edgeflow artifact; re-run `edgeflow convert`")
        data = read_json_file(manifest_path, "manifest")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(f"{manifest_path} is not an edgeflow manifest; re-run `edgeflow convert`")
        version = data.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise ArtifactError(
                f"{root} uses artifact format {version!r}, this edgeflow reads up to {FORMAT_VERSION}: upgrade edgeflow"
            )
        meta = parse_manifest(data, manifest_path)
        if not meta.valid and not allow_invalid:
            why = meta.invalid_reason or "validation did not pass"
            raise ArtifactError(f"{root} was not validated at convert time ({why}); fix the cause and re-run `edgeflow convert`")
        artifact = cls(root, meta.to_dict(), meta=meta)
        if verify:
            artifact.verify()
        report_path = root / REPORT
        if report_path.exists() or report_path.is_symlink():
            report = read_json_file(report_path, "report")
            if not isinstance(report, dict):
                raise ArtifactError(f"{report_path} is not a JSON object; re-run `edgeflow convert`")
            artifact.report = report
        return artifact

    def verify(self) -> None:
        """Every listed file: inside, no symlink, regular, same size and sha256; ONNX external
        data listed too."""
        meta = self.meta or parse_manifest(self.manifest, self.root / MANIFEST)
        for name, entry in meta.files.items():
            path = self.root / name
            info = _lstat_inside(self.root, name)
            if info is None:
                raise ArtifactError(f"{path} is missing from the artifact; copy the whole directory or re-run `edgeflow convert`")
            if not stat.S_ISREG(info.st_mode):
                raise ArtifactError(f"{path} is not a regular file; re-run `edgeflow convert`")
            if info.st_size != entry.bytes:
                raise ArtifactError(
                    f"{path} is {info.st_size} bytes but the manifest says {entry.bytes}: the file is truncated or "
                    "modified; copy it again or re-run `edgeflow convert`"
                )
            if sha256_file(path) != entry.sha256:
                raise ArtifactError(
                    f"{path} does not match its sha256 in the manifest: the file was modified or corrupted; "
                    "copy it again or re-run `edgeflow convert`"
                )
        for name in meta.files:
            if name.endswith(".onnx"):
                check_external_data(self.root, name, meta.files)

    # -- accessors -------------------------------------------------------------------------------
    def graph(self, role: str) -> Path:
        graphs = self.manifest.get("graphs", {})
        if role not in graphs:
            raise ArtifactError(f"{self.root} has no '{role}' graph (it has: {', '.join(sorted(graphs)) or 'none'})")
        return self.root / graphs[role]

    def has(self, role: str) -> bool:
        return role in self.manifest.get("graphs", {})

    @property
    def name(self) -> str:
        return self.manifest.get("model", {}).get("name") or self.root.name

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    @property
    def preprocessing(self) -> dict:
        return self.manifest.get("preprocessing", {})


def check_external_data(root: Path, name: str, files: dict) -> None:
    """An ONNX graph's external-data files must be listed (hence hashed) files of the artifact:
    onnxruntime resolves them relative to the graph and would read an unlisted or outside file."""
    base = PurePosixPath(name).parent
    for location in onnx_external_data(root / name):
        target = str(base / location) if str(base) != "." else location
        try:
            target = safe_relpath(str(PurePosixPath(target)), f"{name} external data")
        except _Invalid as err:
            raise ArtifactError(f"{root / name}: {err}; refusing the graph") from None
        if target not in files:
            raise ArtifactError(
                f"{root / name} reads external data {location!r}, which the manifest does not list with a sha256; "
                "refusing unverified weights: re-run `edgeflow convert`"
            )


# -- writing ---------------------------------------------------------------------------------------
def _artifact_listing(folder: Path) -> set[str] | None:
    """The names a folder may hold as an edgeflow artifact (manifest files + manifest + report),
    or None when its manifest is not an edgeflow manifest."""
    try:
        data = read_json_file(folder / MANIFEST, "manifest")
        files = data.get("files") if isinstance(data, dict) and data.get("format") == FORMAT else None
        if not isinstance(files, dict):
            return None
    except ArtifactError:
        return None
    return {str(name) for name in files} | {MANIFEST, REPORT}


def _entries(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        out += [str(PurePosixPath(rel, n)) if str(rel) != "." else n for n in filenames]
        out += [str(PurePosixPath(rel, n)) + "/" if str(rel) != "." else n + "/" for n in dirnames
                if os.path.islink(os.path.join(dirpath, n))]
    return sorted(out)


def replace_problem(out_dir: Path) -> str | None:
    """Why replacing ``out_dir`` could delete something edgeflow did not write; None when it is
    missing, empty, or a previous artifact holding only the files its manifest lists."""
    out_dir = Path(out_dir)
    if not out_dir.exists() and not out_dir.is_symlink():
        return None
    if out_dir.is_symlink() or not out_dir.is_dir():
        return f"{out_dir} exists and is not a folder"
    entries = _entries(out_dir)
    if not entries:
        return None
    allowed = _artifact_listing(out_dir)
    shown = lambda names: ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")  # noqa: E731
    if allowed is None:
        return f"{out_dir} is not empty and is not an edgeflow artifact (it holds {shown(entries)})"
    foreign = [name for name in entries if name not in allowed]
    if foreign:
        return f"{out_dir} is an edgeflow artifact but also holds files its manifest does not list ({shown(foreign)})"
    return None


def _protected(out_dir: Path) -> str | None:
    """Folders never replaced, even with --force: the current folder, its parents, home, /."""
    target = out_dir.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        return f"{out_dir} is the current folder or contains it"
    if target == Path.home().resolve() or target == Path(target.anchor):
        return f"{out_dir} is the home or root folder"
    return None


def check_output_dir(out_dir: str | Path, force: bool = False, flag: str = "--out") -> Path:
    """Raise unless writing an artifact to ``out_dir`` deletes nothing edgeflow did not write.

    Called before any long work (convert, export) and again just before the swap. ``force``
    allows replacing a non-artifact folder, never the current folder, its parents, home or /.
    """
    out_dir = Path(out_dir)
    protected = _protected(out_dir)
    if protected is not None:
        raise ArtifactError(f"refusing to write {flag} {out_dir}: {protected}; name a new folder, e.g. {flag} {out_dir / 'artifact'}")
    problem = replace_problem(out_dir)
    if problem is not None and not force:
        raise ArtifactError(f"refusing to replace {flag} {out_dir}: {problem}; choose a new folder or pass --force to replace it")
    return out_dir


class ArtifactWriter:
    """Stage files for an artifact, then :meth:`commit` them atomically with a manifest.

    ``out_dir`` is checked on construction (:func:`check_output_dir`): only a missing or empty
    folder or a previous artifact is replaced unless ``force``.
    """

    def __init__(self, out_dir: str | Path, force: bool = False):
        self.force = force
        check_output_dir(out_dir, force)
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.partial-", dir=self.out_dir.parent))
        self.roles: dict[str, str] = {}

    def path(self, name: str) -> Path:
        return self.staging / name

    def add(self, name: str, role: str | None = None) -> Path:
        path = self.staging / name
        if not path.is_file():
            raise ArtifactError(f"internal: {name} was registered but not written")
        if role:
            self.roles[role] = name
        return path

    def copy_in(self, src: str | Path, name: str, role: str | None = None) -> Path:
        shutil.copy2(src, self.staging / name)
        return self.add(name, role)

    def commit(self, manifest: dict, report: dict | None = None, valid: bool = True, invalid_reason: str | None = None) -> Path:
        files = {}
        for path in sorted(self.staging.iterdir()):
            if path.name in (MANIFEST, REPORT):
                continue
            if path.is_symlink() or not path.is_file():
                raise ArtifactError(f"internal: {path.name} in the staged artifact is not a regular file")
            role = next((r for r, n in self.roles.items() if n == path.name), None)
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "role": role}
        full = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION}
        full["files"] = files
        full["graphs"] = dict(self.roles)
        full["valid"] = bool(valid)
        full.pop("invalid_reason", None)
        if not valid:
            full["invalid_reason"] = invalid_reason or "validation failed"
        meta = parse_manifest(json.loads(json.dumps(full)), "the manifest being written")  # one description, both ways
        for name in files:
            if name.endswith(".onnx"):
                check_external_data(self.staging, name, meta.files)
        (self.staging / MANIFEST).write_text(json.dumps(meta.to_dict(), indent=2) + "\n")
        (self.staging / REPORT).write_text(json.dumps(report or {}, indent=2) + "\n")
        os.chmod(self.staging, 0o755 & ~current_umask())  # mkdtemp made it 0700; the artifact is a normal folder
        check_output_dir(self.out_dir, self.force)  # the folder may have changed during a long conversion
        backup = None
        if self.out_dir.exists() or self.out_dir.is_symlink():
            backup = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.old-", dir=self.out_dir.parent))
            os.replace(self.out_dir, backup / "old")
        try:
            os.replace(self.staging, self.out_dir)
        except OSError:
            if backup is not None:
                os.replace(backup / "old", self.out_dir)
            raise
        if backup is not None:
            old = backup / "old"
            if old.is_symlink() or old.is_file():
                old.unlink()
            shutil.rmtree(backup, ignore_errors=True)
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.staging.exists():
            self.abort()
        return False
