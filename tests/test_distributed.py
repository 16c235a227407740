"""``trainer=ddp`` on this CPU: two gloo processes train, only rank 0 writes, and metrics are exact."""

import json

import pytest
import torch.distributed as dist
from conftest import TINY_NET, TINY_RUN, replacing, run_in_process
from warm_process import run_warm

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

DDP_RUN = [
    *replacing(TINY_RUN, *TINY_NET),
    "trainer=ddp",
    "trainer.devices=2",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "data.num_workers=0",
    "data.num_train=16",
    "data.num_val=13",  # not a multiple of 2 processes x batch: shards are uneven
    "data.num_test=4",
    "data.batch_size=4",
    # Cross-entropy is a per-pixel mean, so val/loss too must match exactly; a Dice term is computed
    # per batch and depends on which images share a batch, which differs with the number of processes.
    "model/loss=ce",
]


def test_two_process_ddp_run_writes_once_and_scores_like_a_single_process(tmp_path, monkeypatch, capsys):
    """Processes of their own: Lightning starts the second DDP rank by running the command again (the
    installed script, importing torch and Lightning anew); the first is forked from the test's fork server
    (``tests/warm_process.py``). The single-process score is unet-eval's, run in this process.

    Slow: the second rank's start (imports) and the two ranks' gloo set-up.
    """
    run = tmp_path / "ddp"
    result = run_warm("unet-train", *DDP_RUN, f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "distributed_backend=gloo" in result.stderr
        and "All distributed processes registered" in result.stderr
    )

    files = {path.relative_to(run).as_posix() for path in run.rglob("*") if path.is_file()}
    assert {
        "config.yaml",
        "metrics.json",
        "history.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    } <= files
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    event_files = list(run.glob("tensorboard/**/events.out.tfevents.*"))
    writers = {
        path.name.rsplit(".", 2)[1] for path in event_files
    }  # events.out.tfevents.<time>.<host>.<pid>.<n>
    assert event_files and len(writers) == 1, "only rank 0 logs"
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["global_step"] == 16 // (2 * 4), "each process trains on its half of the data"

    # The same checkpoint scored by one process on the same validation images.
    evaluation = tmp_path / "single"
    result = run_in_process(
        "unet-eval", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "split=val", "trainer.accelerator=cpu",
        f"hydra.run.dir={evaluation}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    single = json.loads((evaluation / "eval.json").read_text())["metrics"]
    validation_keys = [key for key in trained if key.startswith("val/")]
    assert {"val/miou", "val/loss", "val/boundary_f1", "val/checkerboard"} <= set(validation_keys)
    for key in validation_keys:
        assert trained[key] == pytest.approx(single[key], rel=1e-6, abs=1e-9, nan_ok=True), key
