"""Plain-torch models: usable, exportable and loaded back from any file unet writes (``load_model``)
without Lightning, Hydra or the data layer."""

from unet.models.encoders import ENCODERS, Encoder, register_encoder
from unet.models.loading import LoadedModel, load_model
from unet.models.networks import build_network, network_config, network_name
from unet.models.unet import UNet
from unet.models.upsamplers import UPSAMPLERS, Upsampler, register_upsampler

__all__ = [
    "ENCODERS",
    "Encoder",
    "LoadedModel",
    "UNet",
    "UPSAMPLERS",
    "Upsampler",
    "build_network",
    "load_model",
    "network_config",
    "network_name",
    "register_encoder",
    "register_upsampler",
]
