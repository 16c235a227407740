"""Annotations from labelling tools: COCO, labelme, CVAT and YOLO files, written here in their real formats,
rasterised into the masks the folder reader trains on (exact pixels, classes, ignore, overlaps, the cache)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RUN
from PIL import Image
from pycocotools import mask as coco_mask

from unet.data import FolderDataModule
from unet.data.errors import AnnotationError
from unet.utils.errors import ConfigError
from unet.utils.extras import MissingExtraError

SIZE = 16


def write_images(root: Path, stems=("a", "b", "c"), size=(SIZE, SIZE), folder="images") -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate(stems):
        Image.fromarray(np.full(size, 40 * index, dtype=np.uint8)).save(root / folder / f"{stem}.png")
    return root


def square(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def expected(*regions: tuple[int, int, int, int, int], size=(SIZE, SIZE)) -> np.ndarray:
    """A mask of ``(value, row0, row1, col0, col1)`` blocks painted in order."""
    mask = np.zeros(size, dtype=np.int64)
    for value, r0, r1, c0, c1 in regions:
        mask[r0:r1, c0:c1] = value
    return mask


def datamodule(root: Path, tmp_path: Path, annotations="coco.json", **options) -> FolderDataModule:
    options = {"num_classes": "auto", "in_channels": 1, "num_workers": 0, "val_fraction": 0.34} | options
    return FolderDataModule(
        str(root), annotations=annotations, annotation_cache=str(tmp_path / "cache"), **options
    )


def masks(dm: FolderDataModule) -> dict[str, np.ndarray]:
    """Every image's mask as training reads it, by image stem."""
    result = {}
    for split, pairs in dm.pairs.items():
        source = dm.split_source(split)
        for index, pair in enumerate(pairs):
            result[pair.image.stem] = np.asarray(source[index][1], dtype=np.int64)
    return result


def write_coco(
    root: Path, annotations: list[dict], categories=None, stems=("a", "b", "c"), name="coco.json"
) -> Path:
    categories = categories or [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    images = [
        {"id": i, "file_name": f"{stem}.png", "height": SIZE, "width": SIZE} for i, stem in enumerate(stems)
    ]
    for number, annotation in enumerate(annotations):
        annotation.setdefault("id", number + 1)
        annotation.setdefault("iscrowd", 0)
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


# --- COCO ----------------------------------------------------------------------------------------


def test_coco_polygons_give_exact_pixels_categories_in_file_order_and_later_shapes_on_top(tmp_path):
    root = write_images(tmp_path / "data")
    write_coco(
        root,
        [
            {"image_id": 0, "category_id": 7, "segmentation": [square(2, 2, 6, 6)]},
            {"image_id": 0, "category_id": 3, "segmentation": [square(4, 4, 8, 8)]},
            {"image_id": 1, "category_id": 3, "segmentation": [square(0, 0, 16, 1), square(0, 15, 16, 16)]},
        ],
    )
    dm = datamodule(root, tmp_path)
    assert dm.num_classes == 3 and dm.class_names == ["background", "cat", "dog"]  # file order, ids 3, 7
    assert dm.ignore_index is None  # no crowd region: nothing to ignore
    got = masks(dm)
    assert np.array_equal(got["a"], expected((2, 2, 6, 2, 6), (1, 4, 8, 4, 8)))  # the later cat over the dog
    assert np.array_equal(got["b"], expected((1, 0, 1, 0, 16), (1, 15, 16, 0, 16)))  # one shape in two parts
    assert not got["c"].any()  # listed without annotations: all background


@pytest.mark.filterwarnings("ignore:.*__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2
def test_coco_rle_compressed_and_uncompressed_and_crowd_regions_are_ignored(tmp_path):
    root = write_images(tmp_path / "data")
    block = np.zeros((SIZE, SIZE), dtype=np.uint8, order="F")
    block[3:9, 5:7] = 1
    compressed = coco_mask.encode(block)
    compressed["counts"] = compressed["counts"].decode()  # as JSON holds it
    # Uncompressed: column-major run lengths starting with zeros (COCO's own form for crowd regions).
    flat = block.ravel(order="F")
    runs = np.diff(np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]).tolist()
    uncompressed = {"counts": runs, "size": [SIZE, SIZE]}
    assert flat[0] == 0 and np.array_equal(
        coco_mask.decode(coco_mask.frPyObjects(uncompressed, SIZE, SIZE)), block
    )
    write_coco(
        root,
        [
            {"image_id": 0, "category_id": 7, "segmentation": compressed},
            {"image_id": 1, "category_id": 3, "segmentation": uncompressed},
            {"image_id": 2, "category_id": 3, "segmentation": [square(0, 0, 4, 4)]},
            {"image_id": 2, "category_id": 3, "segmentation": uncompressed, "iscrowd": 1},
        ],
    )
    dm = datamodule(root, tmp_path)
    assert dm.ignore_index == 255  # crowd regions and no ignore_index given: 255
    got = masks(dm)
    assert np.array_equal(got["a"], expected((2, 3, 9, 5, 7)))
    assert np.array_equal(got["b"], expected((1, 3, 9, 5, 7)))
    assert np.array_equal(got["c"], expected((1, 0, 4, 0, 4), (255, 3, 9, 5, 7)))
    # Another ignore_index: the crowd pixels take it.
    other = masks(datamodule(root, tmp_path, ignore_index=100))
    assert np.array_equal(other["c"], expected((1, 0, 4, 0, 4), (100, 3, 9, 5, 7)))


def test_a_background_category_in_the_file_is_class_zero(tmp_path):
    root = write_images(tmp_path / "data", stems=("a", "b"))
    categories = [{"id": 1, "name": "cell"}, {"id": 2, "name": "Background"}, {"id": 3, "name": "nucleus"}]
    write_coco(
        root,
        [{"image_id": 0, "category_id": 3, "segmentation": [square(0, 0, 2, 2)]}],
        categories,
        ("a", "b"),
    )
    dm = datamodule(root, tmp_path, val_fraction=0.5)
    assert dm.class_names == ["Background", "cell", "nucleus"]
    assert np.array_equal(masks(dm)["a"], expected((2, 0, 2, 0, 2)))


def test_the_cache_is_reused_and_a_changed_file_is_rasterised_again(tmp_path):
    root = write_images(tmp_path / "data")
    path = write_coco(root, [{"image_id": 0, "category_id": 3, "segmentation": [square(0, 0, 2, 2)]}])
    first = datamodule(root, tmp_path)
    mask_file = first.pairs["train"][0][1]
    assert mask_file.is_relative_to(tmp_path / "cache" / "annotations") and not (root / "masks").exists()
    written = {p: p.stat().st_mtime_ns for p in mask_file.parent.parent.rglob("*")}

    again = datamodule(root, tmp_path)
    assert again.pairs == first.pairs
    assert {
        p: p.stat().st_mtime_ns for p in mask_file.parent.parent.rglob("*")
    } == written  # nothing rewritten

    write_coco(root, [{"image_id": 0, "category_id": 7, "segmentation": [square(0, 0, 3, 3)]}])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a later edit
    changed = datamodule(root, tmp_path)
    assert changed.pairs["train"][0][1].parent != mask_file.parent
    assert np.array_equal(masks(changed)["a"], expected((2, 0, 3, 0, 3)))


def test_several_coco_files_one_per_split_directory(tmp_path):
    root = tmp_path / "data"
    write_images(root, ("a", "b"), folder="train/images")
    write_images(root, ("c",), folder="val/images")
    write_coco(
        root,
        [{"image_id": 1, "category_id": 3, "segmentation": [square(1, 1, 3, 3)]}],
        None,
        ("a", "b"),
        "train.json",
    )
    write_coco(
        root,
        [{"image_id": 0, "category_id": 7, "segmentation": [square(0, 0, 1, 1)]}],
        None,
        ("c",),
        "val.json",
    )
    dm = datamodule(root, tmp_path, annotations=["train.json", "val.json"])
    assert [pair.image.stem for pair in dm.pairs["val"]] == ["c"]
    got = masks(dm)
    assert np.array_equal(got["b"], expected((1, 1, 3, 1, 3))) and np.array_equal(
        got["c"], expected((2, 0, 1, 0, 1))
    )


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (
            {"image_id": 0, "category_id": 3, "segmentation": [[1, 1, 4, 1]]},
            "annotation 1 has a polygon of 2 points",
        ),
        (
            {"image_id": 0, "category_id": 9, "segmentation": [square(0, 0, 1, 1)]},
            "category_id 9, not one of",
        ),
        (
            {"image_id": 5, "category_id": 3, "segmentation": [square(0, 0, 1, 1)]},
            "names image_id 5, which is not",
        ),
        (
            {"image_id": 0, "category_id": 3, "segmentation": {"counts": [4], "size": [2, 2]}},
            "an RLE of size [2, 2]",
        ),
    ],
)
def test_coco_mistakes_name_the_file_and_the_annotation(tmp_path, annotation, message):
    root = write_images(tmp_path / "data")
    write_coco(root, [annotation])
    with pytest.raises(AnnotationError, match="coco.json") as error:
        datamodule(root, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_images_unknown_to_the_file_or_missing_from_it_are_listed(tmp_path):
    root = write_images(tmp_path / "data", stems=("a", "b"))
    write_coco(root, [], stems=("a", "z"))
    with pytest.raises(AnnotationError, match=r"coco.json names images not found in .*images: z.png"):
        datamodule(root, tmp_path)
    write_coco(root, [], stems=("a",))
    with pytest.raises(AnnotationError, match=r"coco.json does not annotate: .*b.png"):
        datamodule(root, tmp_path)


def test_a_size_that_differs_from_the_image_is_refused(tmp_path):
    root = write_images(tmp_path / "data", size=(SIZE, 12))
    write_coco(root, [])
    with pytest.raises(
        AnnotationError, match=r"gives image a.png the size 16x16 \(HxW\) but .*a.png is 16x12"
    ):
        datamodule(root, tmp_path)


def test_num_classes_and_class_names_must_agree_with_the_file(tmp_path):
    root = write_images(tmp_path / "data")
    write_coco(root, [])
    with pytest.raises(
        ConfigError, match=r"data.num_classes=2 but .*coco.json defines 3 classes .* set data.num_classes=3"
    ):
        datamodule(root, tmp_path, num_classes=2)
    assert datamodule(root, tmp_path, num_classes=3).num_classes == 3
    with pytest.raises(ConfigError, match=r"data.class_names \['x', 'y', 'z'\] differ"):
        datamodule(root, tmp_path, class_names=["x", "y", "z"])
    with pytest.raises(ConfigError, match="data.mask_mapping read mask files"):
        datamodule(root, tmp_path, mask_mapping={0: 0})
    with pytest.raises(ConfigError, match="num_classes=auto takes the class count from data.annotations"):
        datamodule(root, tmp_path, annotations=None)


def test_without_pycocotools_the_extra_to_install_is_named(tmp_path, monkeypatch):
    root = write_images(tmp_path / "data")
    write_coco(root, [{"image_id": 0, "category_id": 3, "segmentation": [square(0, 0, 2, 2)]}])
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # as if not installed
    with pytest.raises(
        MissingExtraError, match=r'pycocotools is not installed: pip install "unet\[annotations\]"'
    ):
        datamodule(root, tmp_path)


def test_the_format_is_detected_or_forced(tmp_path):
    root = write_images(tmp_path / "data")
    (root / "notes.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(
        AnnotationError, match="notes.json looks like no known format; set data.annotation_format"
    ):
        datamodule(root, tmp_path, annotations="notes.json")
    with pytest.raises(
        ConfigError, match="unknown data.annotation_format 'voc'; valid names: coco, cvat, labelme, yolo"
    ):
        datamodule(root, tmp_path, annotations="notes.json", annotation_format="voc")
    with pytest.raises(AnnotationError, match="absent.json does not exist"):
        datamodule(root, tmp_path, annotations="absent.json")


# --- labelme -------------------------------------------------------------------------------------


def labelme_file(folder: Path, image: str, shapes: list[dict]) -> None:
    """labelme's own schema (version 5): one file per image, beside it."""
    document = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            {"label": s["label"], "points": s["points"], "group_id": None, "description": "",
             "shape_type": s.get("shape_type", "polygon"), "flags": {}, "mask": None}
            for s in shapes
        ],
        "imagePath": image,
        "imageData": None,
        "imageHeight": SIZE,
        "imageWidth": SIZE,
    }  # fmt: skip
    (folder / f"{Path(image).stem}.json").write_text(json.dumps(document))


def test_labelme_polygons_rectangles_labels_txt_order_and_ignore(tmp_path):
    root = write_images(tmp_path / "data")
    folder = root / "images"  # labelme writes its files beside the images
    labelme_file(folder, "a.png", [
        {"label": "road", "points": [[0, 0], [8, 0], [8, 8], [0, 8]]},
        {"label": "car", "points": [[6, 6], [10, 10]], "shape_type": "rectangle"},
        {"label": "__ignore__", "points": [[12, 12], [16, 12], [16, 16], [12, 16]]},
        {"label": "car", "points": [[1, 14]], "shape_type": "point"},
    ])  # fmt: skip
    labelme_file(folder, "b.png", [])
    labelme_file(folder, "c.png", [{"label": "road", "points": [[0, 0], [16, 0], [16, 1], [0, 1]]}])
    (folder / "labels.txt").write_text("__ignore__\n_background_\ncar\nroad\n")  # labelme2voc's file
    with pytest.warns(UserWarning, match="1 labelme lines/points skipped"):
        dm = datamodule(root, tmp_path, annotations="images", ignore_index=255)
    assert dm.class_names == ["_background_", "car", "road"]
    got = masks(dm)
    assert np.array_equal(got["a"], expected((2, 0, 8, 0, 8), (1, 6, 10, 6, 10), (255, 12, 16, 12, 16)))
    assert not got["b"].any()
    assert np.array_equal(got["c"], expected((2, 0, 1, 0, 16)))


def test_labelme_without_labels_txt_orders_classes_by_first_appearance(tmp_path):
    root = write_images(tmp_path / "data", stems=("a", "b"))
    labelme_file(root / "images", "a.png", [{"label": "zebra", "points": [[0, 0], [2, 0], [2, 2]]}])
    labelme_file(
        root / "images",
        "b.png",
        [
            {"label": "ant", "points": [[0, 0], [2, 0], [2, 2]]},
            {"label": "zebra", "points": [[0, 0], [2, 0], [2, 2]]},
        ],
    )
    assert datamodule(root, tmp_path, annotations="images", val_fraction=0.5).class_names == [
        "background",
        "zebra",
        "ant",
    ]


def test_labelme_polygon_of_two_points_names_the_file(tmp_path):
    root = write_images(tmp_path / "data", stems=("a",))
    labelme_file(root / "images", "a.png", [{"label": "x", "points": [[0, 0], [2, 2]]}])
    with pytest.raises(AnnotationError, match=r"a.json: shape 0 \(x\) has a polygon of 2 points"):
        datamodule(root, tmp_path, annotations="images")


# --- CVAT ----------------------------------------------------------------------------------------


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>1</id><name>cells</name><size>3</size><mode>annotation</mode>
      <labels>
        <label><name>nucleus</name><color>#ff0000</color><type>any</type><attributes></attributes></label>
        <label><name>cell</name><color>#00ff00</color><type>any</type><attributes></attributes></label>
      </labels>
    </task>
  </meta>
  <image id="0" name="a.png" width="16" height="16">
    <box label="nucleus" source="manual" occluded="0" xtl="4" ytl="4" xbr="8" ybr="8" z_order="1"></box>
    <polygon label="cell" source="manual" occluded="0" points="2.00,2.00;10.00,2.00;10.00,10.00;2.00,10.00" z_order="0"></polygon>
    <polyline label="cell" source="manual" occluded="0" points="0,15;15,15" z_order="0"></polyline>
  </image>
  <image id="1" name="b.png" width="16" height="16">
    <mask label="cell" source="manual" occluded="0" rle="1, 2, 1, 2" left="3" top="5" width="3" height="2" z_order="0"></mask>
  </image>
  <image id="2" name="c.png" width="16" height="16"></image>
</annotations>
"""


def test_cvat_xml_boxes_polygons_masks_drawn_by_z_order(tmp_path):
    root = write_images(tmp_path / "data")
    (root / "annotations.xml").write_text(CVAT_XML)
    with pytest.warns(UserWarning, match="1 CVAT polylines/points skipped"):
        dm = datamodule(root, tmp_path, annotations="annotations.xml")
    assert dm.class_names == ["background", "nucleus", "cell"]
    got = masks(dm)
    # The box comes first in the file but has the higher z_order: it is on top.
    assert np.array_equal(got["a"], expected((2, 2, 10, 2, 10), (1, 4, 8, 4, 8)))
    # Runs of 0s and 1s (0s first), row by row over the 3x2 box at (3, 5): 0 1 1 / 0 1 1.
    assert np.array_equal(got["b"], expected((2, 5, 7, 4, 6)))
    assert not got["c"].any()


def test_cvat_label_not_in_the_meta_is_refused(tmp_path):
    root = write_images(tmp_path / "data")
    (root / "annotations.xml").write_text(CVAT_XML.replace('<box label="nucleus"', '<box label="virus"'))
    with pytest.raises(
        AnnotationError, match=r"annotations.xml: image a.png: box 0 has label 'virus', not one of"
    ):
        datamodule(root, tmp_path, annotations="annotations.xml")


# --- YOLO ----------------------------------------------------------------------------------------


def test_yolo_normalised_polygons_names_from_data_yaml_and_images_without_labels(tmp_path):
    root = write_images(tmp_path / "data")
    labels = root / "labels" / "train"  # Ultralytics' layout: labels/<split>/<stem>.txt
    labels.mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames:\n  0: person\n  1: bike\n")
    (labels / "a.txt").write_text(
        "1 0.125 0.125 0.375 0.125 0.375 0.375 0.125 0.375\n0 0.25 0.25 0.125 0.125\n"
    )
    (labels / "b.txt").write_text("")
    dm = datamodule(root, tmp_path, annotations="labels", annotation_format="yolo")
    assert dm.class_names == ["background", "person", "bike"]
    got = masks(dm)
    # The polygon covers pixels 2..5; the box (centre 4, 4; size 2x2) pixels 3..4, drawn later, on top.
    assert np.array_equal(got["a"], expected((2, 2, 6, 2, 6), (1, 3, 5, 3, 5)))
    assert not got["b"].any() and not got["c"].any()  # no label file: no objects, as YOLO reads it


def test_yolo_in_ultralytics_split_folders_with_the_image_folders_named_alone(tmp_path):
    root = tmp_path / "data"
    write_images(root, ("a", "b"), folder="images/train")
    write_images(root, ("c",), folder="images/val")
    for split, stem, line in (
        ("train", "a", "0 0 0 0.5 0 0.5 0.5 0 0.5"),
        ("val", "c", "1 0 0 0.25 0 0.25 0.25 0 0.25"),
    ):
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"{stem}.txt").write_text(line + "\n")
    (root / "data.yaml").write_text("names: [x, y]\n")
    dm = datamodule(
        root, tmp_path, annotations="labels", train_images="images/train", val_images="images/val"
    )
    assert {split: [pair.image.stem for pair in pairs] for split, pairs in dm.pairs.items()} == {
        "train": ["a", "b"],
        "val": ["c"],
    }
    got = masks(dm)
    assert np.array_equal(got["a"], expected((1, 0, 8, 0, 8))) and np.array_equal(
        got["c"], expected((2, 0, 4, 0, 4))
    )
    with pytest.raises(ConfigError, match="data.train_masks read mask files"):
        datamodule(
            root,
            tmp_path,
            annotations="labels",
            train_images="images/train",
            val_images="images/val",
            train_masks="m",
        )


def test_yolo_class_id_beyond_the_names_is_refused(tmp_path):
    root = write_images(tmp_path / "data")
    (root / "labels").mkdir()
    (root / "labels" / "classes.txt").write_text("person\n")
    (root / "labels" / "a.txt").write_text("0 0 0 0.5 0 0.5 0.5\n3 0 0 0.5 0 0.5 0.5\n")
    with pytest.raises(AnnotationError, match=r"a.txt: line 2 has class id '3'; the names define 0..0"):
        datamodule(root, tmp_path, annotations="labels")


# --- training ------------------------------------------------------------------------------------


def test_a_training_run_from_a_coco_file(compose_config, tmp_path):
    from unet.training.run import train

    root = write_images(tmp_path / "data", stems=("a", "b", "c", "d"))
    write_coco(
        root,
        [{"image_id": i, "category_id": 3, "segmentation": [square(2, 2, 10, 10)]} for i in range(4)],
        stems=("a", "b", "c", "d"),
    )
    tiny_model = [o for o in TINY_RUN if not o.startswith("data.") and not o.startswith("trainer.max_epochs")]
    cfg = compose_config(
        "train",
        "data=folder", f"data.root={root}", "data.annotations=coco.json", "data.num_classes=auto",
        "data.in_channels=1", "data.num_workers=0", "data.batch_size=2", "data.val_fraction=0.25",
        "data.train_transforms=null", "data.epoch_size=null", "data.mean=[0.5]", "data.std=[0.25]",
        "trainer.max_epochs=1", "test=false", *tiny_model,
        output_dir=tmp_path / "run",
    )  # fmt: skip
    metrics = train(cfg)
    assert "val/miou" in metrics
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
