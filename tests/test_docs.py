"""The documentation: the site builds in strict mode, the README stays a short way in, and the
configuration reference generated from configs/ lists every key a run composes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import load_docs_script
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from unet.utils.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it (strict: a warning aborts), into a temporary folder; mkdocs run
    in this process (its hooks import torch, which this process has loaded already)."""
    for package in ("mkdocs", "material"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed: pip install -e '.[docs]'")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    out = tmp_path_factory.mktemp("docs") / "site"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_MKDOCS_2_WARNING", "1")
        patch.chdir(ROOT)
        build(load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(out)))
    return out


def test_the_site_builds_in_strict_mode_with_every_page_of_the_nav(site):
    nav_pages = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert "architecture.md" in nav_pages and "reference/configuration.md" in nav_pages
    for page in nav_pages:
        assert (site / page).with_suffix(".html").is_file(), page


def test_the_readme_is_short_and_names_every_command():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    scripts = re.search(
        r"^\[project\.scripts\]\n(.*?)(?:\n\n|\Z)", (ROOT / "pyproject.toml").read_text(), re.S | re.M
    )
    commands = re.findall(r"^([\w-]+)\s*=", scripts.group(1), re.MULTILINE)
    assert len(commands) >= 8
    missing = [command for command in commands if f"`{command}" not in text]
    assert not missing, f"README.md does not name {missing}"


def test_the_readme_gives_the_test_command_ci_runs():
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci_commands
    assert re.search(r"^make test\b", README.read_text(), re.MULTILINE)


def reference_rows(markdown: str) -> dict[str, str]:
    """key -> default, from the reference's tables (first two columns, code spans)."""
    rows = {}
    for line in markdown.splitlines():
        if match := re.match(r"^\| `([^`]+)` \| (?:`+ ?(.*?) ?`+)? \|", line):
            rows[match.group(1)] = match.group(2) or ""
    return rows


def dotted_keys(config: DictConfig, prefix: str = "") -> list[tuple[str, bool]]:
    """(key, is_a_mapping) for every key of a composed config, lists' insides left out."""
    keys = []
    for key, value in config.items_ex(resolve=False):
        name = f"{prefix}{key}"
        is_mapping = OmegaConf.is_dict(value)
        keys.append((name, is_mapping))
        if is_mapping:
            keys += dotted_keys(value, f"{name}.")
    return keys


def test_the_configuration_reference_lists_every_key_of_unet_trains_config():
    rows = reference_rows(load_docs_script("gen_config_reference").render())
    composed = compose_config("train", [])
    listed_tops = {key.split(".")[0] for key in rows}
    assert set(composed.keys()) <= listed_tops, set(composed.keys()) - listed_tops
    # and every key below the top: a row of its own, or inside a value a row shows whole
    shown_whole = {key for key, default in rows.items() if default}
    for key, is_mapping in dotted_keys(composed):
        parts = key.split(".")
        ancestors = {".".join(parts[:n]) for n in range(1, len(parts))}
        assert key in rows or is_mapping or ancestors & shown_whole, key


def test_the_reference_gives_each_key_the_default_its_yaml_file_gives(tmp_path):
    generator = load_docs_script("gen_config_reference")
    (tmp_path / "trainer").mkdir()
    (tmp_path / "train.yaml").write_text(
        "# Entry config.\ndefaults:\n  - trainer: fast\n\n# The seed.\nseed: 42\nhydra:\n  help:\n    app_name: unet-x\n"
    )
    (tmp_path / "trainer" / "fast.yaml").write_text(
        "# Fast.\n\n# Epochs: auto is planned.\nmax_epochs: auto   # or a number\nplugins:\n  - a\n"
    )
    text = generator.render(tmp_path)
    rows = reference_rows(text)
    assert rows == {"seed": "42", "trainer.max_epochs": "auto", "trainer.plugins": "[a]"}
    assert "| `trainer.max_epochs` | `auto` | Epochs: auto is planned. or a number |" in text
    assert "Composes: `trainer: fast`." in text


def browser_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no headless browser: apt-get install chromium")


def test_a_headless_browser_renders_the_front_page(site, tmp_path):
    screenshot = tmp_path / "index.png"
    command = [
        browser_path(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1600",
        f"--screenshot={screenshot}",
        (site / "index.html").as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert screenshot.stat().st_size > 0
    with Image.open(screenshot) as image:
        extrema = image.convert("RGB").getextrema()
    assert any(low != high for low, high in extrema), "the screenshot is one flat colour"
