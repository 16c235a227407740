"""unet-serve: POST /predict answers what unet-predict writes (PNG) or its exact outlines (JSON), bad
input gets a one-line 4xx, the bounds hold (413, 503, 504), a load of concurrent clients all succeed, and
the compare page shows every model's mask in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import run_in_process
from PIL import Image
from test_export_predict import save_checkpoint

from unet.export import export_checkpoint
from unet.inference import Predictor, load_predictor, predict_files
from unet.inference.tiling import TilingSettings
from unet.serving import ServedModel, class_polygons, find_models, load_models
from unet.serving.polygons import signed_area
from unet.utils.errors import ConfigError
from unet.utils.files import write_json

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")  # what FastAPI's TestClient runs on
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

from unet.serving.app import create_app  # noqa: E402
from unet.serving.limits import ServingLimits  # noqa: E402

# Larger than one tile: the answers are tiled as unet-predict tiles.
TILING = TilingSettings(tile_size=32, overlap=0.25, batch_size=2)
# The load test: concurrent clients, requests each.
CLIENTS, REQUESTS_EACH = 8, 3


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    return {
        method: save_checkpoint(root / method / "checkpoints" / "best.ckpt", method)
        for method in ("nearest", "transposed")
    }


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "cells.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 52), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def client(checkpoints):
    app = create_app(load_models(list(checkpoints.values())), TILING, ServingLimits(max_upload_mb=0.05))
    with TestClient(app) as client:
        yield client


def upload(path: Path) -> dict:
    return {"image": (path.name, path.read_bytes(), "image/png")}


def predicted_mask(checkpoint: Path, image: Path, output: Path) -> np.ndarray:
    """The mask unet-predict writes for ``image`` with the same tiling."""
    predict_files(
        load_predictor(checkpoint), [image], output, TILING.tile_size, TILING.overlap, False, False, 2
    )
    return np.asarray(Image.open(output / f"{image.stem}_mask.png"))


def test_health_names_every_model_with_its_classes_and_channels(client):
    health = client.get("/health").json()
    assert health["ready"] is True
    assert [model["name"] for model in health["models"]] == [
        "nearest/checkpoints/best.ckpt",
        "transposed/checkpoints/best.ckpt",
    ]
    assert all(model["classes"] == ["background", "cell", "edge"] for model in health["models"])
    assert all(model["in_channels"] == 1 for model in health["models"])


def test_the_png_answer_is_the_mask_unet_predict_writes(client, checkpoints, image_file, tmp_path):
    response = client.post("/predict", files=upload(image_file))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(served, predicted_mask(checkpoints["nearest"], image_file, tmp_path))
    other = client.post("/predict?model=transposed/checkpoints/best.ckpt", files=upload(image_file))
    served = np.asarray(Image.open(io.BytesIO(other.content)))
    np.testing.assert_array_equal(
        served, predicted_mask(checkpoints["transposed"], image_file, tmp_path / "t")
    )


def even_odd_fill(polygons: list[dict], height: int, width: int) -> np.ndarray:
    """The pixels whose centres lie inside ``polygons`` by the even-odd rule (a ray cast to the left)."""
    inside = np.zeros((height, width), bool)
    for polygon in polygons:
        points = polygon["points"]
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
            if x0 == x1:  # outlines are axis-aligned: only vertical edges cross a horizontal ray
                inside[min(y0, y1) : max(y0, y1), x0:] ^= True
    return inside


def test_the_json_answer_outlines_exactly_the_pixels_of_each_class(client, checkpoints, image_file, tmp_path):
    answer = client.post("/predict", files=upload(image_file), headers={"accept": "application/json"}).json()
    mask = predicted_mask(checkpoints["nearest"], image_file, tmp_path)
    assert (answer["width"], answer["height"]) == (52, 40)
    assert [entry["index"] for entry in answer["classes"]] == np.unique(mask).tolist()
    for entry in answer["classes"]:
        region = mask == entry["index"]
        assert entry["pixels"] == region.sum()
        np.testing.assert_array_equal(even_odd_fill(entry["polygons"], 40, 52), region)
    assert client.post("/predict?format=json", files=upload(image_file)).json() == answer


def test_outlines_have_holes_and_separate_diagonal_neighbours():
    mask = np.zeros((6, 6), np.uint8)
    mask[1:5, 1:5] = 1
    mask[2:4, 2:4] = 0  # a hole
    mask[5, 5] = 1  # touches the ring only at a corner
    (ring,) = [entry for entry in class_polygons(mask, ["bg", "fg"]) if entry["name"] == "fg"]
    loops = sorted(ring["polygons"], key=lambda polygon: -abs(signed_area(polygon["points"])))
    assert [(signed_area(loop["points"]), loop["hole"]) for loop in loops] == [
        (16, False),
        (-4, True),
        (1, False),
    ]
    assert len(loops[0]["points"]) == 4  # corners only
    assert sum(signed_area(loop["points"]) for loop in loops) == ring["pixels"] == 13


def test_bad_input_gets_one_line_4xx(client, image_file, tmp_path):
    cases = {
        "not an image": (client.post("/predict", files={"image": ("notes.png", b"hello", "image/png")}), 400),
        "no image field": (client.post("/predict", files={"file": ("x.png", b"x", "image/png")}), 400),
        "unknown format": (client.post("/predict?format=gif", files=upload(image_file)), 400),
        "unknown model": (client.post("/predict?model=unet", files=upload(image_file)), 404),
        "too large": (client.post("/predict", files={"image": ("big.png", bytes(60_000), "image/png")}), 413),
    }
    five_channels = tmp_path / "stack.tif"
    tifffile.imwrite(
        five_channels, np.zeros((16, 16, 5), np.uint8), photometric="minisblack", planarconfig="contig"
    )
    cases["wrong channel count"] = (client.post("/predict", files=upload(five_channels)), 400)
    for case, (response, status) in cases.items():
        error = response.json()["error"]
        assert response.status_code == status, (case, error)
        assert "\n" not in error and error, case
    assert "notes.png" in cases["not an image"][0].json()["error"]  # the upload's name, not a temporary file
    assert "stack.tif" in cases["wrong channel count"][0].json()["error"]
    assert "'image'" in cases["no image field"][0].json()["error"]
    assert "max_upload_mb=0.05" in cases["too large"][0].json()["error"]


def test_compare_gives_every_models_mask_latency_and_their_disagreement(
    client, checkpoints, image_file, tmp_path
):
    answer = client.post("/compare", files=upload(image_file)).json()
    assert [model["name"] for model in answer["models"]] == list(find_models(list(checkpoints.values())))
    masks = [predicted_mask(path, image_file, tmp_path / name) for name, path in checkpoints.items()]
    for model in answer["models"]:
        assert model["latency_ms"] > 0
        for kind in ("mask", "overlay"):
            with Image.open(io.BytesIO(base64.b64decode(model[kind].split(",", 1)[1]))) as picture:
                assert picture.size == (52, 40) and picture.mode == "RGB"
    with Image.open(io.BytesIO(base64.b64decode(answer["disagreement"].split(",", 1)[1]))) as picture:
        disagreement = np.asarray(picture) > 0
    np.testing.assert_array_equal(disagreement, masks[0] != masks[1])
    assert answer["disagreement_fraction"] == pytest.approx(disagreement.mean())


def test_limits_refuse_a_bound_that_is_not_positive():
    with pytest.raises(ConfigError, match="max_concurrency=0: expected a positive number"):
        ServingLimits(max_concurrency=0)


def test_models_are_found_in_a_folder_of_exports_and_in_a_comparison(checkpoints, tmp_path):
    exports = tmp_path / "exports"
    for name, path in checkpoints.items():
        export_checkpoint(path, "weights", exports / f"{name}.pt")
    assert set(find_models(exports)) == {"nearest", "transposed"}  # the sidecars are not models
    comparison = tmp_path / "cmp"
    write_json(
        comparison / "compare.json", {"methods": ["nearest", "transposed", "dysample"], "seeds": [0, 1]}
    )
    for name, path in checkpoints.items():
        run = comparison / "runs" / name / "seed_1"
        write_json(run / "metrics.json", {"val/miou": 0.5})
        (run / "checkpoints").mkdir()
        shutil.copy(path, run / "checkpoints" / "best.ckpt")
    found = find_models(comparison)  # dysample failed: left out
    assert found == {
        name: comparison / "runs" / name / "seed_1" / "checkpoints" / "best.ckpt" for name in checkpoints
    }


class LiveServer:
    """The application under uvicorn on 127.0.0.1 in a thread, on a port the system picked."""

    def __init__(self, app) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def test_concurrent_clients_all_get_their_mask(checkpoints, image_file):
    models = load_models(checkpoints["nearest"])
    app = create_app(models, TILING, ServingLimits(max_concurrency=2))
    expected = None

    def client_session(_: int) -> list[float]:
        latencies = []
        with httpx.Client(timeout=30) as http:
            for _ in range(REQUESTS_EACH):
                start = time.perf_counter()
                response = http.post(f"{server.url}/predict", files=upload(image_file))
                latencies.append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
                assert response.content == expected
        return latencies

    with LiveServer(app) as server:
        expected = httpx.post(f"{server.url}/predict", files=upload(image_file)).content
        with ThreadPoolExecutor(CLIENTS) as pool:
            latencies = np.array([s for session in pool.map(client_session, range(CLIENTS)) for s in session])
    assert len(latencies) == CLIENTS * REQUESTS_EACH
    p50, p90, p99 = np.percentile(latencies * 1000, [50, 90, 99])
    print(
        f"\n{CLIENTS} clients x {REQUESTS_EACH} requests, max_concurrency=2: latency p50 {p50:.0f} ms, "
        f"p90 {p90:.0f} ms, p99 {p99:.0f} ms, none failed"
    )


def gated_model(gate: threading.Event) -> ServedModel:
    """A model whose predictions wait for ``gate``: it holds its slot as long as a test needs."""

    def run(images: np.ndarray) -> np.ndarray:
        gate.wait(10)
        return np.zeros((images.shape[0], 2, *images.shape[2:]), np.float32)

    metadata = {
        "in_channels": 1,
        "num_classes": 2,
        "class_names": ["a", "b"],
        "mean": [0.5],
        "std": [0.25],
        "min_size": 1,
    }
    return ServedModel("gated", Predictor(run, metadata, Path("gated")))


def test_requests_beyond_the_slots_get_503_and_slow_predictions_504(image_file):
    gate = threading.Event()
    gate.set()  # the warm-up passes
    limits = ServingLimits(max_concurrency=1, queue_timeout_s=0.2, predict_timeout_s=0.5)
    with LiveServer(create_app([gated_model(gate)], TILING, limits)) as server:
        gate.clear()
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, f"{server.url}/predict", files=upload(image_file), timeout=10)
            time.sleep(0.1)
            second = httpx.post(f"{server.url}/predict", files=upload(image_file), timeout=10)
            assert second.status_code == 503 and "queue_timeout_s=0.2" in second.json()["error"]
            assert first.result().status_code == 504
            assert "predict_timeout_s" in first.result().json()["error"]
        gate.set()
        time.sleep(0.05)  # the slow prediction ends and frees its slot
        assert httpx.post(f"{server.url}/predict", files=upload(image_file), timeout=10).status_code == 200


def test_a_streamed_upload_over_the_limit_gets_413(checkpoints):
    app = create_app(load_models(checkpoints["nearest"]), TILING, ServingLimits(max_upload_mb=0.05))

    def chunks():  # no Content-Length: the server counts as the body streams in
        # A well-formed start of the image field, so only the size (not the form's syntax) can end it.
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(20):
            yield bytes(8192)

    with LiveServer(app) as server:
        response = httpx.post(
            f"{server.url}/predict",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
    assert response.status_code == 413
    assert response.json() == {"error": "the upload is larger than max_upload_mb=0.05"}


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
    messages ended by a NUL byte on file descriptors 3 and 4), so no client library is needed."""

    def __init__(self, profile: Path) -> None:
        path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if path is None:
            pytest.skip("no headless browser: apt-get install chromium")
        commands_read, self.commands = os.pipe()
        self.events, events_write = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--remote-debugging-pipe",
                 f"--user-data-dir={profile}", "--window-size=1200,800"]  # fmt: skip
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{events_write}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, path, *flags, "about:blank"],
            pass_fds=(commands_read, events_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(commands_read)
        os.close(events_write)
        self.buffer, self.next_id, self.session = b"", 0, None

    def send(self, method: str, timeout: float = 20, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self.buffer:
                if not select.select([self.events], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise TimeoutError(f"no answer to {method}")
                self.buffer += os.read(self.events, 1 << 20)
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                assert "error" not in answer, (method, answer["error"])
                return answer["result"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)
        return value

    def close(self) -> None:
        os.close(self.commands)
        os.close(self.events)
        self.process.terminate()
        self.process.wait(10)


def test_the_compare_page_shows_every_models_mask_in_a_browser(checkpoints, image_file, tmp_path):
    app = create_app(load_models(list(checkpoints.values())), TILING)
    with LiveServer(app) as server:
        browser = Chromium(tmp_path / "profile")
        try:
            target = browser.send("Target.createTarget", url=f"{server.url}/")["targetId"]
            browser.session = browser.send("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            browser.wait_for("document.getElementById('models').textContent.includes('transposed')")
            root = browser.send("DOM.getDocument")["root"]["nodeId"]
            field = browser.send("DOM.querySelector", nodeId=root, selector="#image")["nodeId"]
            browser.send("DOM.setFileInputFiles", files=[str(image_file)], nodeId=field)
            browser.evaluate("document.querySelector('button[type=submit]').click()")
            assert (
                browser.wait_for(
                    "['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state"
                )
                == "done"
            ), browser.evaluate("document.getElementById('status').textContent")
            shown = browser.wait_for(
                "[...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0) && "
                "[...document.querySelectorAll('.model')].map(c => [c.dataset.name, c.querySelector('img.mask').naturalWidth])"
            )
            assert shown == [[name, 52] for name in find_models(list(checkpoints.values()))]
            assert browser.evaluate("document.querySelector('#disagreement img').naturalHeight") == 40
            screenshot = tmp_path / "compare_page.png"
            screenshot.write_bytes(
                base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
            )
        finally:
            browser.close()
    with Image.open(screenshot) as picture:
        extrema = picture.convert("RGB").getextrema()
    assert any(low != high for low, high in extrema), "the screenshot is one flat colour"


def test_unet_serve_helps_and_refuses_a_missing_model_in_one_line(tmp_path, monkeypatch, capsys):
    helped = run_in_process("unet-serve", "--help", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert helped.returncode == 0
    assert all(
        key in helped.stdout for key in ("ckpt_path", "host", "port", "max_upload_mb", "max_concurrency")
    )
    result = run_in_process(
        "unet-serve",
        "ckpt_path=[missing.ckpt,other.onnx]",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert result.returncode == 2
    assert "missing.ckpt, other.onnx" in result.stderr and "Traceback" not in result.stderr
