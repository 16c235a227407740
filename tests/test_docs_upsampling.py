"""The figures of "Upsampling, explained" (docs/upsampling.md): regenerated, and their numbers checked."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import load_docs_script
from PIL import Image

from unet.models.upsampling_examples import (
    FEATURES,
    max_pooled,
    overlap_counts,
    pooling_style_outputs,
    transposed_outputs,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_figures_are_regenerated_as_images_and_rewritten_only_when_they_change(tmp_path):
    script = load_docs_script("gen_upsampling_figures")
    written = script.write(tmp_path)
    assert sorted(path.name for path in written) == ["overlap.png", "pooling.png", "transposed.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200
    assert script.write(tmp_path) == []  # up to date: mkdocs serve does not rebuild forever
    page = (ROOT / "docs" / "upsampling.md").read_text()
    assert all(f"(upsampling/{path.name})" in page for path in written)


def test_the_pooled_example_keeps_each_windows_maximum():
    pooled, indices = max_pooled()
    assert pooled.tolist() == [[5.0, 9.0], [7.0, 4.0]]
    assert torch.equal(FEATURES.flatten()[indices.flatten()], pooled.flatten())


def test_nearest_bed_of_nails_and_max_unpooling_put_each_value_where_their_names_say():
    pooled, indices = max_pooled()
    outputs = pooling_style_outputs()
    assert torch.equal(outputs["nearest"], pooled.repeat_interleave(2, 0).repeat_interleave(2, 1))
    nails = outputs["bed_of_nails"]  # each value at the top-left corner of its 2x2 cell, zeros elsewhere
    assert torch.equal(nails[0::2, 0::2], pooled) and torch.count_nonzero(nails) == 4
    unpooled = outputs["maxunpool"]  # each value back at the position the max-pool remembered
    assert torch.equal(unpooled.flatten()[indices.flatten()], pooled.flatten())
    assert torch.count_nonzero(unpooled) == 4
    assert outputs["bilinear"][0, 0] == 5 and outputs["bilinear"][-1, -1] == 4  # corners keep their value
    cells = outputs["pixelshuffle"].reshape(2, 2, 2, 2).permute(0, 2, 1, 3) / pooled[:, :, None, None]
    assert torch.allclose(cells, torch.tensor([[1.0, 0.75], [0.5, 0.25]]).expand(2, 2, 2, 2))


def test_transposed_outputs_have_the_strides_size_and_tile_without_overlap_when_k_equals_s():
    pooled, _ = max_pooled()
    outputs = transposed_outputs()
    assert outputs["s=4, k=8, p=2, op=0"].shape == (8, 8) and outputs["s=2, k=3, p=1, op=1"].shape == (4, 4)
    assert torch.equal(outputs["s=4, k=4, p=0, op=0"], pooled.repeat_interleave(4, 0).repeat_interleave(4, 1))
    assert outputs["s=2, k=3, p=1, op=1"][1, 1] == pooled.sum()  # the overlap sums all four blocks


def test_the_overlap_count_is_uniform_where_the_kernel_is_a_multiple_of_the_stride():
    counts = overlap_counts(size=4)
    for label, stride in [("s=2, k=2, p=0, op=0", 2), ("s=2, k=3, p=1, op=1", 2), ("s=2, k=4, p=1, op=0", 2),
                          ("s=4, k=8, p=2, op=0", 4), ("s=4, k=6, p=1, op=0", 4)]:  # fmt: skip
        interior = counts[label][stride:-stride, stride:-stride]
        uniform = bool((interior == interior[0, 0]).all())
        assert uniform == (label.split("k=")[1].split(",")[0] not in ("3", "6")), label
    assert counts["s=2, k=2, p=0, op=0"].unique().tolist() == [1.0]
    assert counts["s=2, k=3, p=1, op=1"][1:-2, 1:-2].unique().tolist() == [1.0, 2.0, 4.0]
