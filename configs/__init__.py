"""Hydra configs, shipped inside the package as ``unet.configs`` (see pyproject.toml)."""
