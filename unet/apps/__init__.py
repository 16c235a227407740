"""Command-line applications: thin Hydra entry points over library functions that tests call directly.

Every command is a Hydra app with its own config file: ``key=value`` overrides, ``-m`` sweeps,
``--help`` (the config's keys), ``--cfg job`` (the composed config). See docs/architecture.md.
"""

from unet.utils.config import CONFIG_MODULE

# Configs ship inside the package (see pyproject.toml), so installed entry points find them.
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"
