"""Model loading: every supported kind round-trips; unsafe pickles are refused without running."""

from __future__ import annotations

import hashlib
import pathlib
import pickle
import warnings

import pytest
import torch

from converters.load import LoadedModel, detect_kind, load_model, metadata_json, save_checkpoint
from converters.zoo import PWCConfig, PWCNet, build_model
from edgeflow.errors import EdgeflowError

torch.set_num_threads(1)

#: A few thousand parameters, total stride 8: every loader path in well under a second.
TINY = PWCConfig(
    pyramid_channels=(4, 6, 8),
    pyramid_convs=1,
    decoder_channels=(8,),
    dense=False,
    context_channels=(8,),
    context_dilations=(2,),
    max_displacement=2,
    activation="relu",
    output_level=2,
    feature_upsampling="bilinear",
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("pwc", TINY).eval()


@pytest.fixture(scope="module")
def pair():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 32, 32, generator=gen) * 255, torch.rand(1, 3, 32, 32, generator=gen) * 255


def same_output(loaded: LoadedModel, reference, pair):
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(*pair), reference(*pair), rtol=0, atol=1e-6)


def sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def one_line_error(match: str, *args, **kwargs) -> str:
    with pytest.raises(EdgeflowError, match=match) as info:
        load_model(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_checkpoint_round_trip(tiny, pair, tmp_path):
    path = save_checkpoint(tiny, tmp_path / "tiny.pt", extra={"step": 3})
    loaded = load_model(path)
    assert loaded.kind == "checkpoint" and loaded.arch == "pwc"
    assert loaded.config == tiny.config_dict() and loaded.config["pyramid_channels"] == [4, 6, 8]
    assert loaded.source_path == str(path) and loaded.sha256 == sha256(path)
    assert isinstance(loaded.module, PWCNet) and loaded.pad_multiple == 8 and not loaded.module.training
    same_output(loaded, tiny, pair)
    raw = torch.load(path, weights_only=True)
    assert raw["extra"] == {"step": 3} and set(raw) >= {"arch", "config", "state_dict"}


def test_zoo_name(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model("pwc-lite")
    assert loaded.kind == "zoo" and loaded.name == "pwc-lite" and loaded.arch == "pwc"
    assert loaded.pad_multiple == 32 and loaded.config["activation"] == "relu"
    if loaded.source_path is None:
        assert loaded.sha256 is None and "random" in loaded.warning
    # A zoo model saved as a checkpoint comes back as the same architecture.
    path = save_checkpoint(loaded.module, tmp_path / "lite.pt")
    again = load_model(path)
    assert again.config == loaded.config and again.pad_multiple == 32


def test_torchscript_round_trip(tiny, pair, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(tiny, pair)
        # Content, not extension, decides: a TorchScript archive named .pt2 is still TorchScript.
        path = tmp_path / "tiny_ts.pt2"
        torch.jit.save(traced, str(path), _extra_files={"edgeflow.json": metadata_json(tiny)})
    assert detect_kind(path) == "torchscript"
    loaded = load_model(path)
    assert loaded.kind == "torchscript" and loaded.sha256 == sha256(path)
    assert loaded.arch == "pwc" and loaded.config == tiny.config_dict() and loaded.pad_multiple == 8
    same_output(loaded, tiny, pair)


def test_export_program_round_trip(tiny, pair, tmp_path):
    program = torch.export.export(tiny, pair)
    path = tmp_path / "tiny_program.pt"  # .pt on purpose
    torch.export.save(program, path, extra_files={"edgeflow.json": metadata_json(tiny)})
    assert detect_kind(path) == "export"
    loaded = load_model(path)
    assert loaded.kind == "export" and loaded.arch == "pwc" and loaded.pad_multiple == 8
    same_output(loaded, tiny, pair)


def test_pickled_module_needs_trust(tiny, pair, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(tiny, path)
    message = one_line_error("refusing to unpickle", path)
    assert "arbitrary code" in message and "--trust-pickle" in message and "checkpoint" in message
    loaded = load_model(path, trust_pickle=True)
    assert loaded.kind == "pickle" and loaded.arch == "pwc" and loaded.sha256 == sha256(path)
    same_output(loaded, tiny, pair)
    # Plain pickle.dump of a module: refused too, loaded when trusted.
    raw = tmp_path / "whole.pkl"
    raw.write_bytes(pickle.dumps(tiny))
    one_line_error("refusing to unpickle", raw)
    same_output(load_model(raw, trust_pickle=True), tiny, pair)


class _Malicious:
    """Unpickling this creates a marker file: a stand-in for arbitrary code execution."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "pickle"])
def test_malicious_pickle_does_not_run_when_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"arch": "pwc", "state_dict": _Malicious(marker)}
    if writer == "torch_zip":
        torch.save(payload, path)
    elif writer == "torch_legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert not marker.exists()
    one_line_error("refusing to unpickle", path)
    assert not marker.exists(), "refused pickle executed code"
    # The same file does run when the user explicitly trusts it (and is then rejected as no model).
    with pytest.raises(EdgeflowError):
        load_model(path, trust_pickle=True)
    assert marker.exists()


def test_missing_file_and_unknown_name(tmp_path):
    one_line_error("not found", tmp_path / "nope.pt")
    one_line_error("unknown model 'raft'", "raft")
    one_line_error("directory", tmp_path)


def test_bad_checkpoints(tiny, tmp_path):
    unknown = tmp_path / "unknown.pt"
    torch.save({"arch": "resnet", "config": {}, "state_dict": {}}, unknown)
    one_line_error("unknown arch 'resnet'", unknown)

    good = save_checkpoint(tiny, tmp_path / "good.pt")
    payload = torch.load(good, weights_only=True)
    state = payload["state_dict"]
    dropped = next(iter(state))
    del state[dropped]
    state["bogus.weight"] = torch.zeros(1)
    wrong_keys = tmp_path / "wrong_keys.pt"
    torch.save(payload, wrong_keys)
    message = one_line_error("does not fit arch 'pwc'", wrong_keys)
    assert "1 missing" in message and dropped in message and "bogus.weight" in message

    payload = torch.load(good, weights_only=True)
    payload["config"]["decoder_channels"] = [16]
    wrong_shapes = tmp_path / "wrong_shapes.pt"
    torch.save(payload, wrong_shapes)
    one_line_error("wrong shape", wrong_shapes)

    payload["config"] = {"no_such_field": 1}
    bad_config = tmp_path / "bad_config.pt"
    torch.save(payload, bad_config)
    one_line_error("bad config", bad_config)

    bare = tmp_path / "bare.pt"
    torch.save(tiny.state_dict(), bare)
    one_line_error("bare state_dict", bare)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01not a model" * 50)
    one_line_error("not a PyTorch model file", garbage)


def test_save_checkpoint_needs_arch_for_foreign_modules(tmp_path):
    with pytest.raises(EdgeflowError, match="arch"):
        save_checkpoint(torch.nn.Conv2d(1, 1, 1), tmp_path / "x.pt")


def test_bundled_weights_are_used(tmp_path, monkeypatch):
    import converters.zoo.registry as registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    torch.manual_seed(5)
    trained = build_model("pwc-lite")
    path = save_checkpoint(trained, tmp_path / "pwc-lite.pt")
    model = registry.get_model("pwc-lite")
    assert model.pretrained is True and model.zoo_name == "pwc-lite"
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    loaded = load_model("pwc-lite")
    assert loaded.kind == "zoo" and loaded.name == "pwc-lite" and loaded.warning is None
    assert loaded.source_path == str(path) and loaded.sha256 == sha256(path)


def test_zoo_weights_load_through_one_function(tmp_path, monkeypatch):
    """get_model and load_model read bundled weights through registry.load_weights only: a file of
    the wrong family is refused by both with the same line."""
    import converters.zoo.registry as registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    torch.manual_seed(6)
    save_checkpoint(build_model("flownetc-s"), tmp_path / "pwc-lite.pt")  # a FlowNetC under pwc-lite's name
    with pytest.raises(EdgeflowError, match="hold arch 'flownetc', not 'pwc'") as direct:
        registry.get_model("pwc-lite")
    message = one_line_error("hold arch 'flownetc', not 'pwc'", "pwc-lite")
    assert message == str(direct.value)
    (tmp_path / "pwc-lite.pt").write_bytes(b"truncated")
    one_line_error("cannot read bundled weights .*reinstall edgeflow-sdk", "pwc-lite")


def test_shipped_weights_match_their_records():
    """Each record's file ships in the toolchain (converters/zoo/weights/), not in the runtime
    package, and holds the parameter count the record states."""
    import converters.zoo.registry as registry

    assert registry.WEIGHTS_DIR == pathlib.Path(registry.__file__).resolve().parent / "weights"
    assert not (pathlib.Path(__file__).resolve().parents[1] / "edgeflow" / "data" / "models").exists()
    for name, record in registry.WEIGHTS.items():
        assert registry.MODELS[name].record is record and record.path.is_file(), name
        model = registry.load_weights(registry.MODELS[name])
        assert sum(p.numel() for p in model.parameters()) == record.params, name
        assert all(pathlib.Path(__file__).resolve().parents[1].joinpath(r).is_file() for r in record.recipe), name
