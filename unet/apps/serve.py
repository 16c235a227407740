"""``unet-serve ckpt_path=<model file(s)> [host=127.0.0.1] [port=8000]``: a model behind an HTTP endpoint.

Keys: ``configs/serve.yaml``; see :func:`unet.api.deploy.serve_from_config` (:mod:`unet.serving`).
"""

from __future__ import annotations

from omegaconf import DictConfig

from unet.apps.hydra_app import hydra_app
from unet.utils.runtime import apply_runtime


@hydra_app("serve")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-serve``."""
    apply_runtime(cfg.runtime)
    from unet.api.deploy import serve_from_config  # loads torch: after the config's checks

    serve_from_config(cfg)


if __name__ == "__main__":
    main()
