"""Command-line applications: thin Hydra entry points over functions that tests call directly."""

# Configs ship inside the package (see pyproject.toml), so installed entry points find them.
CONFIG_PATH = "pkg://unet.configs"
