"""Experiment tracking: runs logged to MLflow (a local store, a real server) and W&B (offline), several
loggers at once, and a comparison's runs grouped in one MLflow experiment."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY_RUN, run_in_process
from test_compare_plan import composed_runs
from test_refusals import last_line, run_app
from warm_process import run_warm

from unet.compare.plan import sweep_commands
from unet.utils.config import compose_config

# MLflow's own use of SQLAlchemy, deprecated by SQLAlchemy; nothing of ours touches it.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
NO_EXTRA = "MLflow and W&B are the tracking extra: pip install -e '.[tracking]'"
# One epoch: the prediction images are logged at the last epoch's end.
TRACKED_RUN = [o for o in TINY_RUN if not o.startswith("trainer.max_epochs")]
TRACKED_RUN += ["trainer.max_epochs=1", "model.upsample=nearest"]


def mlflow_client(tracking_uri: str):
    pytest.importorskip("mlflow", reason=NO_EXTRA)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def only_run(client, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"no MLflow experiment {experiment_name!r}"
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def assert_tracked(client, run, run_dir: Path) -> None:
    """The MLflow run holds the config, the training scalars, metrics.json's final scores and the images."""
    assert run.info.run_name == "nearest" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.upsample"] == "nearest" and params["seed"] == "42"
    assert params["model.net.depth"] == "2" and not any(key.startswith("paths.") for key in params)
    final = json.loads((run_dir / "metrics.json").read_text())
    metrics = run.data.metrics  # the latest value of each: the final one
    assert {"train/loss", "val/loss"} <= set(metrics)
    for key in ("val/miou", "test/miou", "test/dice"):
        assert metrics[key] == pytest.approx(final[key]), key
    images = [info.path for info in client.list_artifacts(run.info.run_id, "images")]
    assert any(path.startswith("images/val~prediction") and path.endswith(".png") for path in images), images


def installed(package: str) -> bool:
    try:
        __import__(package)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    """One tiny run logged to TensorBoard, CSV, MLflow (its default store, in the run directory) and, when
    installed, W&B (offline; its settings and caches in a temporary home, not the user's).

    A process of its own (forked from ``tests/warm_process.py``'s server), with every logger at once: W&B
    starts a service process and registers exit hooks that are the command's to run, not the test
    process's.
    """
    pytest.importorskip("mlflow", reason=NO_EXTRA)
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    loggers = ["tensorboard", "csv", "mlflow", *(["wandb"] if installed("wandb") else [])]
    with pytest.MonkeyPatch.context() as environment:
        for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            environment.setenv(variable, str(tmp_path_factory.mktemp("wandb-home")))
        environment.delenv("WANDB_MODE", raising=False)
        environment.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = run_warm(
            "unet-train", *TRACKED_RUN, f"logger=[{','.join(loggers)}]", f"hydra.run.dir={run_dir}",
            cwd=run_dir.parent,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_mlflow_run_in_the_run_directory_holds_params_metrics_and_images(tracked_run):
    client = mlflow_client(f"sqlite:///{tracked_run / 'mlflow.db'}")
    assert_tracked(client, only_run(client, "unet"), tracked_run)
    # Nothing lands beside the run: MLflow's defaults (./mlruns, ./mlflow.db) are not used.
    assert sorted(path.name for path in tracked_run.parent.iterdir()) == ["run"]


def test_tensorboard_beside_other_loggers_gets_its_scalars_images_and_hparams(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, list] = {}
    for events in (tracked_run / "tensorboard" / "nearest" / "version_0").glob("events.out.tfevents.*"):
        for kind, names in EventAccumulator(str(events), size_guidance={"images": 0}).Reload().Tags().items():
            if isinstance(names, list):
                tags.setdefault(kind, []).extend(names)
    assert "val/prediction" in tags["images"]
    assert {"val/miou", "hparams/test/miou"} <= set(tags["scalars"])


def test_csv_gets_the_images_as_png_files_and_the_final_metrics_as_its_last_row(tracked_run):
    csv_dir = tracked_run / "csv" / "nearest" / "version_0"
    assert [path.name for path in csv_dir.glob("images/*.png")] == ["val_prediction_step_4.png"]
    with (csv_dir / "metrics.csv").open() as rows:
        last = list(csv.DictReader(rows))[-1]
    final = json.loads((tracked_run / "metrics.json").read_text())
    assert float(last["test/miou"]) == pytest.approx(final["test/miou"]) and last["global_step"] == "4"


def test_wandb_offline_writes_its_run_files_in_the_run_directory(tracked_run):
    pytest.importorskip("wandb", reason=NO_EXTRA)
    (offline,) = (tracked_run / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")  # the run's config and history, for `wandb sync`
    logged = records.read_bytes()
    assert all(word in logged for word in (b"model.upsample", b"val/miou", b"test/miou"))
    assert list(offline.glob("files/media/images/val/prediction_*.png"))


@pytest.mark.parametrize(
    ("selection", "expected"),
    [("logger=[tensorboard,mlflow]", {"tensorboard", "mlflow"}), ("logger=[csv,wandb]", {"csv", "wandb"})],
)
def test_several_loggers_are_selected_as_a_list(selection, expected):
    cfg = compose_config("train", [selection, "model.upsample=maxunpool"])
    assert set(cfg.logger) == expected
    assert all(logger.get("name", logger.get("run_name")) == "maxunpool" for logger in cfg.logger.values())


def test_a_logger_without_its_package_names_the_extra_on_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: importing it fails
    arguments = [*TRACKED_RUN, "logger=mlflow", f"hydra.run.dir={tmp_path}"]
    code, err, _ = run_app("train", *arguments, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    line = last_line(err)
    assert line.startswith("error: logger=mlflow needs mlflow, which cannot be imported (")
    assert '): pip install "unet[tracking]"' in line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# How long a local MLflow server may take to answer (its database set-up takes seconds on a busy machine).
SERVER_START_S = 60


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store and artifact folder; its address."""
    pytest.importorskip("mlflow", reason=NO_EXTRA)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1",
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    # A session of its own: the CLI starts the web server as a child, and both end with the session.
    server = subprocess.Popen(
        command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                answer = (tmp_path / "server.log").read_text()[-500:]
                pytest.skip(f"mlflow server did not answer within {SERVER_START_S} s: {answer}")
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # a throwaway store: no graceful shutdown to wait for
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()


def test_a_run_logs_to_a_team_server_with_its_artifacts_kept_there(
    mlflow_server, tmp_path, monkeypatch, capsys
):
    """Slow: MLflow's client, imported for this run, sends every metric and image to the server over HTTP."""
    run_dir = tmp_path / "run"
    result = run_in_process(
        "unet-train", *TRACKED_RUN, "logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}",
        f"hydra.run.dir={run_dir}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow_client(mlflow_server)
    assert_tracked(client, only_run(client, "unet"), run_dir)
    assert not (run_dir / "mlflow.db").exists() and not (run_dir / "mlartifacts").exists()
    assert list((tmp_path / "server-artifacts").rglob("val~prediction*.png"))


def compare_plan(train_overrides: list[str], logger: dict) -> dict:
    return {
        "methods": ["nearest", "transposed_k3"],
        "variants": {"transposed_k3": {"upsample": "transposed", "options": {"kernel_size": 3}}},
        "seeds": [3, 4],
        "decoder_widths": None,
        "train_overrides": train_overrides,
        "compare_config": {"logger": logger},
    }


def test_a_comparisons_runs_share_one_mlflow_experiment_named_per_method_and_seed(tmp_path):
    output_dir = tmp_path.resolve() / "cmp_lr"
    plan = compare_plan(["logger=mlflow"], {"mlflow": {}})
    runs = [run for command in sweep_commands(plan, output_dir / "runs") for run in composed_runs(command)]
    assert [run.logger.mlflow.run_name for run in runs] == ["nearest/seed_3", "transposed_k3/seed_3"]
    for run in runs:
        assert run.logger.mlflow.experiment_name == "cmp_lr"
        assert run.logger.mlflow.tracking_uri == f"sqlite:///{output_dir / 'mlflow.db'}"
        assert run.logger.mlflow.artifact_location == str(output_dir / "mlartifacts")


def test_a_comparison_keeps_the_users_tracking_server_and_leaves_other_loggers_alone(tmp_path):
    server = "logger.mlflow.tracking_uri=http://mlflow.example:5000"
    plan = compare_plan(["logger=mlflow", server], {"mlflow": {}})
    for command in sweep_commands(plan, tmp_path / "runs"):
        assert [o for o in command if o.startswith("logger.mlflow.tracking_uri")] == [server]
        assert not any(o.startswith("logger.mlflow.artifact_location") for o in command)
    plan = compare_plan([], {"tensorboard": {}})
    assert not any("mlflow" in o for command in sweep_commands(plan, tmp_path / "runs") for o in command)
