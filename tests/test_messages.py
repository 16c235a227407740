"""The one-line answers that must not mislead: each names what happened and what to do."""

from __future__ import annotations

import pytest
from test_export_predict import save_checkpoint
from test_planning import fingerprint, plan_for

from unet.inference import load_predictor, predict_files
from unet.training.run import resolve_checkpoint
from unet.utils.errors import InputNotFoundError, OutputExistsError


def test_resuming_a_run_that_never_wrote_a_checkpoint_names_where_it_looked(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    with pytest.raises(InputNotFoundError) as error:
        resolve_checkpoint(str(run), tmp_path / "new")
    message = str(error.value)
    assert f"{run / 'checkpoints' / 'last.ckpt'} does not exist" in message
    assert "never wrote a checkpoint" in message and "\n" not in message


def test_a_run_directory_resumes_from_its_checkpoints_last_ckpt(tmp_path):
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    assert resolve_checkpoint(str(tmp_path / "run"), tmp_path / "new") == str(last)


def test_predicting_into_an_existing_file_is_one_line_naming_it(tmp_path):
    predictor = load_predictor(save_checkpoint(tmp_path / "model.ckpt", "nearest"), "cpu", "auto")
    taken = tmp_path / "out.png"
    taken.write_bytes(b"the user's file")
    with pytest.raises(OutputExistsError, match=f"^output={taken} is a file: .*folder") as error:
        predict_files(predictor, [tmp_path / "in.png"], taken)
    assert "Errno" not in str(error.value)
    assert taken.read_bytes() == b"the user's file"


def test_the_crop_planned_for_images_smaller_than_it_does_not_claim_to_fit_them():
    choice = plan_for(fingerprint(images=20, size=(8, 8))).choices["augment.crop"]
    assert choice.value == 16
    assert "at most the smallest image" not in choice.reason
    assert "larger than the smallest image (8x8)" in choice.reason
