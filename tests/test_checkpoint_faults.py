"""Damaged, diverged and mistaken model files are refused by every command, naming the file and the fault."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RUN
from PIL import Image
from test_export_predict import save_checkpoint
from test_reliability import run_app

from unet.apps import evaluate as evaluate_app
from unet.apps import export as export_app
from unet.apps import predict as predict_app
from unet.apps import train as train_app
from unet.export import export_checkpoint
from unet.inference import load_predictor
from unet.models.safe_loading import CheckpointError


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A checkpoint as unet-train writes it (3 classes, 1 channel, depth-2 U-Net)."""
    return save_checkpoint(tmp_path_factory.mktemp("good") / "checkpoints" / "best.ckpt", "bilinear")


def onnx_model(path: Path) -> Path:
    """An ONNX model (one Identity node) as the onnx package writes it. What a file is, is read from its
    bytes, so it stands for an ONNX export here at a fraction of an export's seconds; unet's own ONNX
    exports pass the same check each time ``load_predictor`` loads one (test_export_predict.py)."""
    onnx = pytest.importorskip("onnx", reason="ONNX files are written with the onnx package")
    shape = [1, 1, 8, 8]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["images"], ["logits"])],
        "identity",
        [onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, shape)],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, shape)],
    )
    onnx.save(onnx.helper.make_model(graph), str(path))
    return path


@pytest.fixture(scope="module")
def exports(good, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {
        "onnx": onnx_model(root / "m.onnx"),
        **{
            export_format: export_checkpoint(good, export_format, root / name)[0]
            for export_format, name in (("torchscript", "m.pt"), ("weights", "m.weights.pt"))
        },
    }


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "input" / "slice.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48), dtype=np.uint8)).save(path)
    return path


def largest_member_data(path: Path) -> tuple[int, int]:
    """Where the bytes of the archive's largest member (the weights) start in the file, and how many."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    with path.open("rb") as file:
        file.seek(member.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
    return member.header_offset + 30 + name_length + extra_length, member.file_size


def damage(source: Path, target: Path, how: str) -> Path:
    """A copy of ``source`` with one byte flipped or 64 bytes zeroed inside the weights, or cut in half."""
    data = bytearray(source.read_bytes())
    start, size = largest_member_data(source)
    if how == "flipped":
        data[start + size // 2] ^= 0xFF
    elif how == "zeroed":
        data[start : start + 64] = bytes(64)
    else:
        data = data[: len(data) // 2]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    if source.with_name(source.name + ".json").exists():  # an export keeps its sidecar
        shutil.copy(source.with_name(source.name + ".json"), target.with_name(target.name + ".json"))
    return target


def run_command(
    command: str, model: Path, tmp_path: Path, image: Path, monkeypatch, capsys
) -> tuple[int, str]:
    """``command`` given ``model`` where it expects a trained model; returns (exit code, stderr)."""
    arguments = {
        "eval": (evaluate_app, [f"ckpt_path={model}"]),
        "train": (train_app, [f"ckpt_path={model}", *TINY_RUN]),
        "export": (export_app, [f"ckpt_path={model}", "format=weights", f"output={tmp_path / 'out.pt'}"]),
        "predict": (predict_app, [f"ckpt_path={model}", f"input={image}", f"output={tmp_path / 'masks'}"]),
    }
    app, extra = arguments[command]
    return run_app(app, *extra, f"hydra.run.dir={tmp_path / command}", monkeypatch=monkeypatch, capsys=capsys)


COMMANDS = ["eval", "train", "export", "predict"]


@pytest.mark.parametrize("how", ["flipped", "zeroed", "truncated"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_checkpoint_is_refused_by_every_command(
    good, how, command, tmp_path, image, monkeypatch, capsys
):
    bad = damage(good, tmp_path / "bad" / "best.ckpt", how)
    code, err = run_command(command, bad, tmp_path, image, monkeypatch, capsys)
    assert code == 2 and f"{bad} is damaged" in err, err[-2000:]
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "masks").exists()


@pytest.mark.parametrize("export_format", ["weights", "torchscript"])
def test_a_damaged_export_is_refused_by_predict(exports, export_format, tmp_path):
    bad = damage(exports[export_format], tmp_path / exports[export_format].name, "flipped")
    with pytest.raises(CheckpointError, match=f"{bad} is damaged"):
        load_predictor(bad)


def with_nan(source: Path, target: Path, tensors: str = "state_dict") -> tuple[Path, str]:
    """A copy of a checkpoint (or plain weights) with a NaN in its first floating-point tensor."""
    checkpoint = torch.load(source, weights_only=True)
    state = checkpoint[tensors] if tensors else checkpoint
    name = next(key for key, value in state.items() if value.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target, name


@pytest.mark.parametrize("command", ["eval", "export", "predict"])
def test_non_finite_weights_are_refused_naming_the_tensor(
    good, command, tmp_path, image, monkeypatch, capsys
):
    bad, name = with_nan(good, tmp_path / "nan" / "best.ckpt")
    code, err = run_command(command, bad, tmp_path, image, monkeypatch, capsys)
    assert code == 2 and f"{bad} holds non-finite values (NaN or Inf) in {name}" in err, err[-2000:]
    assert not (tmp_path / "masks").exists()  # predict wrote all-zero masks from it


def test_non_finite_plain_weights_are_refused_by_predict(exports, tmp_path):
    source = exports["weights"]
    bad, name = with_nan(source, tmp_path / source.name, tensors="")
    shutil.copy(f"{source}.json", f"{bad}.json")
    with pytest.raises(CheckpointError, match=rf"holds non-finite values \(NaN or Inf\) in {name}"):
        load_predictor(bad)


@pytest.mark.parametrize(
    ("command", "export_format", "what"),
    [
        ("eval", "onnx", "is an ONNX model (an export)"),
        ("train", "torchscript", "is a TorchScript archive (an export)"),
        ("export", "onnx", "is an ONNX model (an export)"),
        ("export", "weights", "holds plain network weights"),
    ],
)
def test_an_export_given_for_a_checkpoint_says_what_it_is(
    exports, command, export_format, what, tmp_path, image, monkeypatch, capsys
):
    model = exports[export_format]
    code, err = run_command(command, model, tmp_path, image, monkeypatch, capsys)
    assert code == 2 and f"{model} {what}" in err and "training checkpoint (.ckpt" in err, err[-2000:]
    assert "unet-predict" in err


@pytest.mark.parametrize(
    ("content", "what"), [("onnx", "is an ONNX model"), ("text", "is not a PyTorch file")]
)
def test_a_ckpt_that_is_something_else_says_what_it_is(
    exports, content, what, tmp_path, image, monkeypatch, capsys
):
    fake = tmp_path / "fake.ckpt"
    if content == "onnx":
        shutil.copy(exports["onnx"], fake)
    else:
        fake.write_text("epoch=3 val_miou=0.9\n")
    for command in ("eval", "predict"):
        code, err = run_command(command, fake, tmp_path, image, monkeypatch, capsys)
        assert code == 2 and f"{fake} {what}" in err, err[-2000:]


def test_plain_weights_that_would_run_code_are_refused_by_predict(
    exports, tmp_path, image, monkeypatch, capsys
):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.weights.pt"
    torch.save({"net.weight": Payload()}, evil)
    shutil.copy(f"{exports['weights']}.json", f"{evil}.json")
    code, err = run_command("predict", evil, tmp_path, image, monkeypatch, capsys)
    assert code == 2 and f"refusing to load {evil}" in err and "Traceback" not in err
    assert not marker.exists()


def test_a_torchscript_sidecar_on_plain_weights_says_what_the_file_is(exports, tmp_path):
    weights = shutil.copy(exports["weights"], tmp_path / "m.pt")
    sidecar = json.loads(Path(f"{exports['weights']}.json").read_text())
    Path(f"{weights}.json").write_text(json.dumps({**sidecar, "format": "torchscript"}))
    with pytest.raises(
        CheckpointError, match="is a torch.save archive .* a TorchScript archive .* is expected"
    ):
        load_predictor(weights)


def with_other_weights(source: Path, target: Path) -> Path:
    """A copy of a checkpoint whose first convolution has another width than its config names (as a
    checkpoint of an earlier version whose network had other shapes)."""
    checkpoint = torch.load(source, weights_only=True)
    state = checkpoint["state_dict"]
    name = next(key for key, value in state.items() if value.ndim == 4)
    state[name] = torch.cat([state[name], state[name]])
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


@pytest.mark.parametrize("command", ["eval", "export", "predict"])
def test_weights_of_another_network_are_refused_in_one_line(
    good, command, tmp_path, image, monkeypatch, capsys
):
    bad = with_other_weights(good, tmp_path / "other" / "best.ckpt")
    code, err = run_command(command, bad, tmp_path, image, monkeypatch, capsys)
    assert code == 2 and f"{bad} holds weights of another network than the one it names" in err, err[-2000:]
    assert "Traceback" not in err and not (tmp_path / "masks").exists()
