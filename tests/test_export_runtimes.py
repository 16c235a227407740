"""The deployment forms and the choice among them: OpenVINO IR, static int8 ONNX, what each sidecar
measures (quality against the checkpoint, speed here) and ``unet-predict runtime_choice=auto``."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from test_export_deploy import synthetic_checkpoint

from unet.api.deploy import model_to_run
from unet.export import export_checkpoint
from unet.inference import load_predictor
from unet.inference.runtimes import choose_runtime
from unet.inference.speed import SpeedSettings, measure_speed
from unet.models.loading import read_sidecar
from unet.profiling.machine import cpu_model
from unet.utils.errors import ConfigError
from unet.utils.extras import MissingExtraError

# OpenVINO in the test process: run apart from the parallel suite (pyproject.toml, own_process).
pytestmark = pytest.mark.own_process

pytest.importorskip("onnxruntime", reason="the exports are checked and run with onnxruntime")
TINY_SPEED = SpeedSettings(image_size=48, tile_size=32, overlap=0.25, batch_sizes=(1, 2), rounds=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return synthetic_checkpoint(tmp_path_factory.mktemp("run") / "checkpoints" / "best.ckpt")


def test_openvino_ir_gives_the_checkpoints_logits_and_records_its_precision(checkpoint, tmp_path):
    pytest.importorskip("openvino", reason="format=openvino needs the openvino package")
    path, sidecar = export_checkpoint(checkpoint, "openvino", tmp_path / "model.xml")
    assert path.is_file() and path.with_suffix(".bin").is_file() and sidecar.is_file()
    assert sorted(item.name for item in tmp_path.iterdir()) == ["model.bin", "model.xml", "model.xml.json"]
    metadata = read_sidecar(path)
    assert metadata["format"] == "openvino" and metadata["check_max_abs_diff"] <= 1e-4
    assert metadata["openvino"]["inference_precision"] in ("f32", "bf16")
    images = np.random.default_rng(3).standard_normal((2, 1, 27, 41)).astype(np.float32)
    predictor = load_predictor(path)
    assert predictor.metadata["num_classes"] == 4
    if metadata["openvino"]["inference_precision"] == "f32":
        np.testing.assert_allclose(predictor(images), load_predictor(checkpoint)(images), atol=1e-4)
    # quality against the checkpoint on the validation split: an exact copy changes nothing
    quality = metadata["quality"]
    assert quality["images"] == 4 and quality["miou"] == pytest.approx(quality["miou_checkpoint"], abs=1e-3)


def test_without_openvino_its_export_and_its_files_say_which_extra_to_install(
    checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=r'openvino is not installed: pip install "unet\[openvino\]"'):
        export_checkpoint(checkpoint, "openvino", tmp_path / "out" / "model.xml")
    assert not (tmp_path / "out").exists()
    (tmp_path / "model.xml").write_text("<net/>")
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "model.xml.json").write_text(json.dumps(minimal_sidecar()))
    with pytest.raises(MissingExtraError, match="openvino is not installed"):
        load_predictor(tmp_path / "model.xml")


def minimal_sidecar() -> dict:
    """The keys every sidecar holds (what read_sidecar checks), for a hand-made IR file."""
    return {
        "format": "openvino", "in_channels": 1, "num_classes": 4, "class_names": ["a", "b", "c", "d"],
        "mean": [0.5], "std": [0.25], "min_size": 2, "net": {"_target_": "unet.models.UNet"},
    }  # fmt: skip


def test_static_int8_is_qdq_loadable_and_records_its_quality_change(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime.quantization", reason="quantize=static needs onnxruntime.quantization")
    onnx = pytest.importorskip("onnx")
    path, sidecar = export_checkpoint(checkpoint, "onnx", tmp_path / "m.onnx", quantize="static")
    quantized = tmp_path / "m.int8.onnx"
    assert sorted(item.name for item in tmp_path.iterdir()) == [
        "m.int8.onnx", "m.int8.onnx.json", "m.onnx", "m.onnx.json",
    ]  # fmt: skip
    assert "QuantizeLinear" in {node.op_type for node in onnx.load(str(quantized)).graph.node}
    metadata = read_sidecar(quantized)
    report = metadata["quantization"]
    assert report["method"] == "static" and report["format"] == "QDQ" and report["calibration_images"] == 3
    assert json.loads(sidecar.read_text())["quantized_copy"] == report
    quality = metadata["quality"]
    assert quality["split"] == "val" and quality["images"] == 4 and quality["against"] == "checkpoint"
    assert quality["miou_change"] == pytest.approx(quality["miou"] - quality["miou_checkpoint"])
    assert quality["pixel_accuracy_change"] == pytest.approx(
        quality["pixel_accuracy"] - quality["pixel_accuracy_checkpoint"]
    )
    assert 0 <= quality["pixel_accuracy"] <= 1 and 0.5 < quality["pixels_agreeing"] <= 1
    float_quality = read_sidecar(path)["quality"]
    assert (
        float_quality["miou_change"] == pytest.approx(0, abs=1e-6) and float_quality["pixels_agreeing"] == 1
    )
    images = np.random.default_rng(0).standard_normal((1, 1, 32, 40)).astype(np.float32)
    assert load_predictor(quantized)(images).shape == (1, 4, 32, 40)


def test_static_int8_without_training_images_is_refused_before_writing(tmp_path):
    checkpoint = synthetic_checkpoint(tmp_path / "run" / "best.ckpt", with_data=False)
    with pytest.raises(ConfigError, match="quantize=static calibrates on the run's training images"):
        export_checkpoint(checkpoint, "onnx", tmp_path / "out" / "m.onnx", quantize="static")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_sidecar_records_the_speed_here_at_batch_1_and_the_best_batch(checkpoint, tmp_path):
    path, _ = export_checkpoint(
        checkpoint, "onnx", tmp_path / "m.onnx", measure_speed=partial(measure_speed, settings=TINY_SPEED)
    )
    speed = read_sidecar(path)["speed"]
    assert speed["runtime"] == "onnxruntime" and speed["cpu"] == cpu_model() and speed["threads"] >= 1
    by_batch = speed["megapixels_per_s_by_batch"]
    assert set(by_batch) == {"1", "2"} and all(value > 0 for value in by_batch.values())
    assert speed["megapixels_per_s"] == max(by_batch.values()) == by_batch[str(speed["best_batch"])]
    assert speed["megapixels_per_s_batch1"] == by_batch["1"] and speed["image"] == [48, 48]
    assert speed["checkpoint"]["runtime"] == "pytorch" and speed["checkpoint"]["megapixels_per_s"] > 0


def measured(
    folder: Path, checkpoint: Path, name: str, speed: float, change: float | None, cpu: str = ""
) -> Path:
    """A file beside ``checkpoint`` whose sidecar says it was exported from it, with a known speed (on
    ``cpu``; this one by default) and mIoU change; the checkpoint's own speed is 1 megapixel/s."""
    path = folder / name
    path.write_bytes(b"")
    here = cpu or cpu_model()
    sidecar = {
        "checkpoint": str(checkpoint.resolve()),
        "speed": {
            "cpu": here,
            "megapixels_per_s": speed,
            "checkpoint": {"cpu": here, "megapixels_per_s": 1.0},
        },
        "quality": {"skipped": "no data"} if change is None else {"miou_change": change},
    }
    (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return path


@pytest.fixture
def forms(tmp_path) -> Path:
    """best.ckpt with exports of known speeds and quality changes beside it; returns the checkpoint."""
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"")
    measured(tmp_path, checkpoint, "best.onnx", 2.0, 0.0)
    measured(tmp_path, checkpoint, "best.xml", 3.0, -0.004)
    measured(tmp_path, checkpoint, "best.int8.onnx", 5.0, -0.012)
    measured(tmp_path, checkpoint, "fast.onnx", 9.0, 0.0, cpu="another CPU")  # measured elsewhere
    measured(tmp_path, checkpoint, "unscored.onnx", 8.0, None)  # quality not measured
    measured(tmp_path, tmp_path / "other.ckpt", "other.onnx", 99.0, 0.0)  # another checkpoint's
    return checkpoint


def test_auto_picks_the_fastest_form_within_the_tolerance_and_says_why(forms):
    pytest.importorskip("openvino")
    chosen, line = choose_runtime(forms, 0.005)
    assert chosen == forms.parent / "best.xml"
    assert line.startswith("runtime_choice=auto: best.xml (openvino, 3.00 megapixels/s, mIoU -0.0040)")
    assert "within 0.005 mIoU" in line and "then best.onnx 2.00, best.ckpt 1.00" in line
    assert "best.int8.onnx: mIoU -0.0120" in line and "fast.onnx: speed not measured on this CPU" in line
    assert "unscored.onnx: quality not measured" in line and "other.onnx" not in line
    assert "\n" not in line
    # a looser tolerance admits the int8 copy; from an exported file, the same choice
    assert choose_runtime(forms.parent / "best.onnx", 0.02)[0] == forms.parent / "best.int8.onnx"
    assert choose_runtime(forms, 0.001)[0] == forms.parent / "best.onnx"


def test_auto_falls_back_in_one_line_without_openvino(forms, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    chosen, line = choose_runtime(forms, 0.005)
    assert chosen == forms.parent / "best.onnx" and "best.xml: openvino is not installed here" in line
    assert "\n" not in line


def test_auto_runs_an_unmeasured_model_as_given_and_given_skips_the_choice(tmp_path, caplog):
    model = tmp_path / "best.ckpt"
    model.write_bytes(b"")
    cfg = OmegaConf.create({"ckpt_path": str(model), "runtime_choice": "auto", "runtime_tolerance": 0.005})
    with caplog.at_level("INFO", logger="unet.api.deploy"):
        assert Path(model_to_run(cfg)) == model
    assert (
        "runtime_choice=auto: no measured form of best.ckpt to choose from; running it as given"
        in caplog.text
    )
    assert model_to_run(OmegaConf.merge(cfg, {"runtime_choice": "given"})) == model
    with pytest.raises(ConfigError, match="runtime_choice=fastest: expected one of auto, given"):
        model_to_run(OmegaConf.merge(cfg, {"runtime_choice": "fastest"}))


def test_unet_export_measures_and_unet_predict_runs_the_choice(checkpoint, tmp_path):
    """The commands end to end: unet-export writes quality and speed (measure.* keys), unet-predict's
    default runtime_choice=auto picks among the checkpoint and its export and says so in one line.

    As installed, each in a process of its own: the commands load onnxruntime (and look for OpenVINO) beside
    torch, which a long-lived test worker that already ran hundreds of tests need not share (run in-process,
    a test worker died here once in a full run, not reproduced alone).

    Slow: two command starts, the export's parity check, quality and speed measurement, then the prediction.
    """
    from conftest import run_cli
    from PIL import Image

    model = tmp_path / "best.ckpt"
    model.write_bytes(checkpoint.read_bytes())
    measure = [
        "measure.image_size=48",
        "measure.tile_size=32",
        "measure.batch_sizes=[1,2]",
        "measure.rounds=1",
    ]
    exported = run_cli("unet-export", f"ckpt_path={model}", "format=onnx", *measure, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    sidecar = read_sidecar(tmp_path / "best.onnx")
    assert sidecar["speed"]["best_batch"] in (1, 2) and sidecar["quality"]["images"] == 4
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 36), dtype=np.uint8)).save(
        tmp_path / "a.png"
    )
    predicted = run_cli(
        "unet-predict", f"ckpt_path={model}", f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'out'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    (line,) = [
        line for line in (predicted.stdout + predicted.stderr).splitlines() if "runtime_choice=auto:" in line
    ]
    assert "is the fastest here within 0.005 mIoU of the checkpoint" in line
    assert (tmp_path / "out" / "a_mask.png").is_file()
