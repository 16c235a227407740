"""``unet.models.load_model``: every model file unet writes loads into a plain ``nn.Module`` with its
classes and normalisation, refusing damaged, diverged and unsafe files, without Lightning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN, replacing
from test_checkpoint_faults import damage, with_nan

import unet
from unet.export import export_checkpoint
from unet.models import LoadedModel, load_model
from unet.models.encoders.torchvision import EncoderWeightsError, read_state_dict
from unet.models.loading import CHECKPOINT_FORMAT, sidecar_path
from unet.models.safe_loading import CheckpointError
from unet.training.checkpoint import module_from_checkpoint
from unet.training.run import train
from unet.utils.config import compose_config

# What unet-export writes for each format the loader reads back, and its file name.
EXPORTS = {"weights": "m.weights.pt", "torchscript": "m.pt", "pt2": "m.pt2"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The best checkpoint of a tiny training run (one level, one step), as unet-train writes it."""
    output_dir = tmp_path_factory.mktemp("run")
    one_step = replacing(TINY_RUN, "trainer.max_epochs=1", "data.num_train=16", "model.net.depth=1")
    train(compose_config("train", [f"paths.output_dir={output_dir}", *one_step]))
    return output_dir / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {name: export_checkpoint(trained, name, root / file)[0] for name, file in EXPORTS.items()}


def refusal(path: Path, match: str) -> str:
    """The one-line :class:`CheckpointError` ``load_model(path)`` raises."""
    with pytest.raises(CheckpointError, match=match) as error:
        load_model(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_a_trained_checkpoint_loads_into_a_plain_module_with_the_lightning_modules_logits(trained):
    loaded = load_model(trained)
    module, _ = module_from_checkpoint(trained)
    hparams = module.hparams
    assert isinstance(loaded, LoadedModel) and isinstance(loaded.network, torch.nn.Module)
    assert not type(loaded.network).__module__.startswith("lightning") and not loaded.network.training
    assert (loaded.kind, loaded.format_version, loaded.unet_version) == (
        "checkpoint",
        CHECKPOINT_FORMAT,
        unet.__version__,
    )
    assert (loaded.in_channels, loaded.num_classes) == (hparams.in_channels, hparams.num_classes)
    assert loaded.class_names == tuple(hparams.class_names) and loaded.ignore_index == hparams.ignore_index
    assert (loaded.mean, loaded.std) == (tuple(hparams.mean), tuple(hparams.std))
    assert loaded.net_config == module.network_config and loaded.sidecar is None
    images = torch.randn(2, hparams.in_channels, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(images), module(images))


@pytest.mark.parametrize("export_format", sorted(EXPORTS))
def test_an_export_loads_with_its_sidecar_and_gives_the_checkpoints_logits(trained, exports, export_format):
    reference, loaded = load_model(trained), load_model(exports[export_format])
    assert loaded.kind == export_format and loaded.sidecar["format"] == export_format
    assert loaded.net_config == reference.net_config and loaded.class_names == reference.class_names
    assert (loaded.in_channels, loaded.num_classes, loaded.mean, loaded.std) == (
        reference.in_channels,
        reference.num_classes,
        reference.mean,
        reference.std,
    )
    assert (loaded.format_version, loaded.unet_version) == (None, unet.__version__)
    images = torch.randn(1, reference.in_channels, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(images), reference.network(images), atol=1e-4, rtol=0)


@pytest.mark.parametrize("which", ["checkpoint", "weights"])
def test_a_file_with_a_flipped_byte_is_refused_in_one_line(trained, exports, which, tmp_path):
    source = trained if which == "checkpoint" else exports["weights"]
    bad = damage(source, tmp_path / source.name, "flipped")
    refusal(bad, "is damaged: the bytes of its member .* do not match their checksum")


@pytest.mark.parametrize("which", ["checkpoint", "weights"])
def test_non_finite_weights_are_refused_naming_the_tensor(trained, exports, which, tmp_path):
    source = trained if which == "checkpoint" else exports["weights"]
    bad, name = with_nan(source, tmp_path / source.name, "state_dict" if which == "checkpoint" else "")
    if which == "weights":
        sidecar_path(bad).write_text(sidecar_path(source).read_text())
    refusal(bad, rf"holds non-finite values \(NaN or Inf\) in {name}")


def test_a_checkpoint_naming_an_untrusted_target_is_refused(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["hyper_parameters"]["loss"] = {"_target_": "os.system", "command": "touch pwned"}
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    refusal(tmp_path / "evil.ckpt", "'os.system' is outside the packages")


def test_a_sidecar_naming_an_untrusted_network_is_refused(exports, tmp_path):
    weights = tmp_path / "m.weights.pt"
    weights.write_bytes(exports["weights"].read_bytes())
    sidecar = json.loads(sidecar_path(exports["weights"]).read_text())
    sidecar["net"]["_target_"] = "builtins.exec"
    sidecar_path(weights).write_text(json.dumps(sidecar))
    refusal(weights, "'builtins.exec' is outside the packages")


class Payload:
    """What a crafted file holds: unpickling it would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_when_unpickled_is_refused(tmp_path):
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"net.weight": Payload(tmp_path / "pwned")}, "hyper_parameters": {}}, evil)
    message = refusal(evil, "refusing to load .*: it would run code when loaded .*; it was not loaded$")
    assert "weights_only" not in message and "posix.system" in message  # never PyTorch's advice to load it
    assert not (tmp_path / "pwned").exists()


def test_encoder_weights_that_would_run_code_are_refused_without_the_advice_to_load_them(tmp_path):
    evil = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": Payload(tmp_path / "pwned")}, evil)
    with pytest.raises(EncoderWeightsError, match="it would run code when loaded") as error:
        read_state_dict(evil)
    assert "weights_only" not in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "pwned").exists()


def test_an_onnx_file_is_refused_saying_what_runs_it(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x08\x12\x07pytorch")
    refusal(model, "is an ONNX model: onnxruntime runs it")


def test_loading_a_checkpoint_imports_neither_lightning_nor_hydra(trained):
    probe = (
        "import sys; from unet.models.loading import load_model; "
        f"load_model({str(trained)!r}); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning', 'hydra', 'omegaconf'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
