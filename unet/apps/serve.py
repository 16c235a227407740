"""``unet-serve ckpt_path=<model file(s)> [host=127.0.0.1] [port=8000]``: a model behind an HTTP endpoint.

Keys: ``configs/deploy/serve.yaml``; see :func:`unet.api.deploy.serve_from_config` (:mod:`unet.serving`).
"""

from __future__ import annotations

from omegaconf import DictConfig

from unet.api.deploy import serve_from_config
from unet.apps import DEPLOY_CONFIG_PATH
from unet.apps.hydra_app import hydra_app


@hydra_app("serve", DEPLOY_CONFIG_PATH)
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-serve``."""
    serve_from_config(cfg)


if __name__ == "__main__":
    main()
