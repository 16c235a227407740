"""``unet-serve``'s HTTP application: ``POST /predict``, ``POST /compare``, ``GET /health`` and the
compare page at ``GET /``.

Every error is JSON ``{"error": "<one line>"}`` with its status: 400 for an upload that is no image or
does not fit the model, 413 for one over ``max_upload_mb``, 503 when every prediction slot stayed busy
for ``queue_timeout_s``, 504 for a prediction over ``predict_timeout_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from unet.inference.tiling import TilingSettings
from unet.serving.limits import LimitUploadSize, PredictionSlots, ServiceError, ServingLimits
from unet.serving.models import ServedModel, warm_up
from unet.serving.segmenting import (
    compare_models,
    png_bytes,
    polygons_answer,
    read_upload,
    segment_upload,
)
from unet.utils.errors import UserError
from unet.utils.extras import requires_extra

with requires_extra("serve"):
    from fastapi import APIRouter, FastAPI, File, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException

# The answer formats of POST /predict (?format=...).
FORMATS = ("png", "json")


@dataclass
class ServerState:
    """What the routes share: the models (the first is ``/predict``'s default), how to tile, the slots."""

    models: dict[str, ServedModel]
    tiling: TilingSettings
    slots: PredictionSlots
    ready: bool = False

    def model(self, name: str | None) -> ServedModel:
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ServiceError(404, f"model={name!r}: this server has {', '.join(self.models)}")
        return self.models[name]


router = APIRouter()


def state_of(request: Request) -> ServerState:
    return request.app.state.server


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Whether the models are loaded and warmed up, and each model's name, classes and input channels."""
    state = state_of(request)
    return {"ready": state.ready, "models": [model.describe() for model in state.models.values()]}


def answer_format(requested: str | None, accept: str) -> str:
    """``?format=`` when given, else JSON when the client accepts JSON and not PNG, else PNG."""
    if requested is None:
        return "json" if "application/json" in accept and "image/png" not in accept else "png"
    if requested not in FORMATS:
        raise ServiceError(400, f"format={requested!r}: expected one of {', '.join(FORMATS)}")
    return requested


@router.post("/predict")
async def predict(
    request: Request,
    image: Annotated[UploadFile, File(description="the image file")],
    answer: Annotated[str | None, Query(alias="format", description="png (default) or json")] = None,
    model: Annotated[str | None, Query(description="a model's name (GET /health); default the first")] = None,
) -> Response:
    """The class map of the uploaded ``image`` as a PNG of class indices, or its outlines as JSON."""
    state = state_of(request)
    served = state.model(model)
    kind = answer_format(answer, request.headers.get("accept", ""))
    data = await image.read()

    def work() -> Any:
        pixels = read_upload(data, image.filename, served.predictor.metadata["in_channels"])
        mask = segment_upload(served, pixels, state.tiling)
        return polygons_answer(served, mask) if kind == "json" else png_bytes(mask)

    result = await state.slots.run(work)
    return JSONResponse(result) if kind == "json" else Response(result, media_type="image/png")


@router.post("/compare")
async def compare(request: Request, image: Annotated[UploadFile, File(description="the image file")]) -> Any:
    """Every model's mask, overlay and latency on the uploaded ``image``, and where they disagree."""
    state = state_of(request)
    data = await image.read()
    models = list(state.models.values())
    return await state.slots.run(
        lambda: compare_models(models, data, image.filename, state.tiling), timeout_scale=len(models)
    )


@router.get("/", response_class=HTMLResponse)
def page() -> str:
    """The compare page: upload an image, see each model's mask and overlay side by side."""
    return resources.files("unet.serving").joinpath("page.html").read_text()


def one_line(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": one line}``: the user's mistakes as 400, the server's bounds as theirs."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return one_line(error.status, str(error))

    @app.exception_handler(UserError)
    async def user_error(request: Request, error: UserError) -> JSONResponse:
        return one_line(400, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
        return one_line(400, "; ".join(problems) + " (send the image as the multipart field 'image')")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return one_line(error.status_code, str(error.detail))


def create_app(
    models: list[ServedModel],
    tiling: TilingSettings | None = None,
    limits: ServingLimits | None = None,
) -> LimitUploadSize:
    """The ASGI application serving ``models``; on startup each is warmed up (``GET /health`` says
    ``ready``), on shutdown its prediction threads end."""
    tiling = tiling or TilingSettings()
    limits = limits or ServingLimits()
    state = ServerState({model.name: model for model in models}, tiling, PredictionSlots(limits))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for model in models:
            await loop.run_in_executor(state.slots.executor, warm_up, model, tiling.tile_size)
        state.ready = True
        yield
        state.ready = False
        state.slots.close()

    app = FastAPI(title="unet-serve", lifespan=lifespan)
    app.state.server = state
    app.include_router(router)
    add_error_handlers(app)
    return LimitUploadSize(app, limits.max_upload_mb)


def serve(app: LimitUploadSize, host: str, port: int, keep_alive_s: float = 5.0) -> None:
    """Run ``app`` with uvicorn on ``host:port`` until interrupted."""
    with requires_extra("serve"):
        import uvicorn

    uvicorn.run(app, host=host, port=port, timeout_keep_alive=int(keep_alive_s), log_level="info")
