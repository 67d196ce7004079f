"""The artifact directory: the contract between ``edgeflow convert`` and the runtime.

A directory holding the model file(s), ``manifest.json`` (what the files are, how to feed them,
the sha256 of every file) and ``report.json`` (parity, accuracy and latency numbers). The runtime
trusts nothing the manifest does not vouch for: every file is size- and hash-checked on open, and
an artifact whose validation failed at convert time is refused.

Writing is atomic: files are staged in a sibling folder and swapped in at the end, so an
interrupted convert never leaves a half-written artifact that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeflow.errors import ArtifactError

FORMAT = "edgeflow-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REPORT = "report.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Artifact:
    """An opened, verified artifact directory."""

    root: Path
    manifest: dict
    report: dict = field(default_factory=dict)

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
        if not manifest_path.is_file():
            raise ArtifactError(f"{root} has no {MANIFEST}: it is not an edgeflow artifact; re-run `edgeflow convert`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArtifactError(f"{manifest_path} is not valid JSON ({err}); re-run `edgeflow convert`") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArtifactError(f"{manifest_path} is not an edgeflow manifest; re-run `edgeflow convert`")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArtifactError(
                f"{root} uses artifact format {version!r}, this edgeflow reads up to {FORMAT_VERSION}: upgrade edgeflow"
            )
        if not manifest.get("valid", False) and not allow_invalid:
            why = manifest.get("invalid_reason", "validation did not pass")
            raise ArtifactError(f"{root} was not validated at convert time ({why}); fix the cause and re-run `edgeflow convert`")
        artifact = cls(root, manifest)
        if verify:
            artifact.verify()
        report_path = root / REPORT
        if report_path.is_file():
            try:
                artifact.report = json.loads(report_path.read_text())
            except (OSError, json.JSONDecodeError):
                artifact.report = {}
        return artifact

    def verify(self) -> None:
        """Check every file the manifest lists: present, same size, same sha256."""
        files = self.manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise ArtifactError(f"{self.root}/{MANIFEST} lists no files; re-run `edgeflow convert`")
        for name, meta in files.items():
            path = self.root / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ArtifactError(f"{self.root}/{MANIFEST} names a file outside the artifact ({name}); refusing it")
            if not path.is_file():
                raise ArtifactError(f"{path} is missing from the artifact; copy the whole directory or re-run `edgeflow convert`")
            size = path.stat().st_size
            if size != meta.get("bytes"):
                raise ArtifactError(
                    f"{path} is {size} bytes but the manifest says {meta.get('bytes')}: the file is truncated or "
                    "modified; copy it again or re-run `edgeflow convert`"
                )
            if sha256_file(path) != meta.get("sha256"):
                raise ArtifactError(
                    f"{path} does not match its sha256 in the manifest: the file was modified or corrupted; "
                    "copy it again or re-run `edgeflow convert`"
                )

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
        return self.manifest.get("model", {}).get("name", self.root.name)

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    @property
    def preprocessing(self) -> dict:
        return self.manifest.get("preprocessing", {})


class ArtifactWriter:
    """Stage files for an artifact, then :meth:`commit` them atomically with a manifest."""

    def __init__(self, out_dir: str | Path):
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
            if path.name in (MANIFEST, REPORT) or not path.is_file():
                continue
            role = next((r for r, n in self.roles.items() if n == path.name), None)
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "role": role}
        full = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
        full["files"] = files
        full["graphs"] = dict(self.roles)
        full["valid"] = bool(valid)
        if not valid:
            full["invalid_reason"] = invalid_reason or "validation failed"
        (self.staging / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
        (self.staging / REPORT).write_text(json.dumps(report or {}, indent=2) + "\n")
        backup = None
        if self.out_dir.exists():
            backup = self.out_dir.with_name(f".{self.out_dir.name}.old-{os.getpid()}")
            os.replace(self.out_dir, backup)
        os.replace(self.staging, self.out_dir)
        if backup is not None:
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
