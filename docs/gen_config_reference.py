"""The configuration reference (docs/reference/configuration.md), generated from configs/**/*.yaml.

Every entry config (a command's) and every group option, each key with its default and the YAML
comment written above it (or beside it), so the reference cannot drift from the files. mkdocs runs
it before each build (`hooks:` in mkdocs.yml); `python docs/gen_config_reference.py` writes it alone.
The output is generated: it is git-ignored, never edited by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
OUTPUT = ROOT / "docs" / "reference" / "configuration.md"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>\"[^\"]*\"|'[^']*'|[^\s#'\"-][^:]*?):(?:\s+(?P<rest>.*))?$")
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)")
# The --help text of each command: not a setting, and shown by `--help` itself.
_SKIPPED = {("hydra", "help")}


@dataclass
class Entry:
    """One key of a YAML file: its path inside the file, its default as shown, and its comment."""

    path: tuple[str, ...]
    default: str
    comment: list[str]


@dataclass
class ConfigFile:
    """One YAML file: its description (the comment at its top), its defaults list and its keys."""

    path: Path
    relative: str  # as the page shows it: configs/...
    package: tuple[str, ...]
    description: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    app_name: str | None = None


def _split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment), a ``#`` inside quotes staying in the value."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index].rstrip(), text[index + 1 :].strip()
    return text.rstrip(), ""


def _comment_text(line: str) -> str:
    """A comment line's text after ``# `` (one space dropped, deeper indentation kept for examples)."""
    text = line.strip()[1:]
    return text[1:] if text.startswith(" ") else text


def _show_block_value(value: Any) -> str:
    """A value written on the lines below its key: a list in one line (a list of objects by their
    targets); a mapping shows nothing (its keys are rows of their own)."""
    if isinstance(value, dict):
        return ""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        names = [str(item.get("_target_", "{...}")) for item in value]
        return "[" + ", ".join(names) + "]"
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _package_of(path: Path, configs: Path, header: list[str]) -> tuple[str, ...]:
    """The dotted place a file's keys land in the composed config (Hydra's ``@package`` rules)."""
    group = path.parent.relative_to(configs).parts
    if (path.parent / "__init__.py").exists():
        return ()  # an entry config: its keys are at the top
    for line in header:
        if match := _PACKAGE.match(line.strip()):
            package = match.group(1)
            if package == "_global_":
                return ()
            return group if package == "_group_" else tuple(package.split("."))
    return group


def _read_defaults(data: dict) -> list[str]:
    defaults = []
    for item in data.get("defaults") or []:
        if isinstance(item, dict):
            defaults += [f"{key}: {'null' if value is None else value}" for key, value in item.items()]
        elif item != "_self_":
            defaults.append(str(item))
    return defaults


def parse(path: Path, configs: Path = CONFIGS) -> ConfigFile:
    """One YAML file's keys with their defaults and comments, in the file's order."""
    lines = path.read_text().splitlines()
    data = yaml.safe_load("\n".join(lines)) or {}
    relative = path.relative_to(configs.parent).as_posix()
    parsed = ConfigFile(path, relative, _package_of(path, configs, lines[:3]), defaults=_read_defaults(data))
    parsed.app_name = _lookup(data, ("hydra", "help", "app_name"))
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings the current line is inside
    pending: list[str] = []  # comment lines waiting for the key below them
    skip_deeper_than: int | None = None  # inside a list, a block scalar or a skipped key
    at_top = True
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if skip_deeper_than is not None:
            if (
                not stripped
                or indent > skip_deeper_than
                or (indent == skip_deeper_than and stripped[0] == "-")
            ):
                continue
            skip_deeper_than = None
        if not stripped:
            if at_top and pending:  # the file's own description, apart from its first key
                parsed.description, pending, at_top = pending, [], False
            continue
        if stripped.startswith("#"):
            if not _PACKAGE.match(stripped):
                pending.append(_comment_text(line))
            continue
        if stripped.startswith("-"):  # a list's items belong to the key above them
            skip_deeper_than, pending = indent, []
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            raise ValueError(f"{path}: a line this generator cannot read: {line!r}")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match.group("key").strip("'\"")
        keys = (*[name for _, name in stack], key)
        value, beside = _split_comment(match.group("rest") or "")
        if at_top and (key == "defaults" or not value):  # the comment on top of a file's first section
            parsed.description, pending = pending, []
        at_top = False
        comment, pending = pending + ([beside] if beside else []), []
        if keys[:2] in _SKIPPED or key == "defaults" and not stack:
            skip_deeper_than = indent
            continue
        if re.fullmatch(r"[|>][-+0-9]*", value):  # a block of text: shown by --help, not here
            skip_deeper_than = indent
            value = "(text)"
        elif not value:
            value = _show_block_value(_lookup(data, keys))
            stack.append((indent, key))
        if value or comment:  # a bare section's keys are rows of their own
            parsed.entries.append(Entry(keys, value, comment))
    return parsed


# ------------------------------------------------------------------------------------------ markdown


def _escape(text: str) -> str:
    """Comment text as Markdown: code spans kept, HTML and emphasis characters shown as typed."""
    parts = re.split(r"(`[^`]*`)", text)
    for index, part in enumerate(parts):
        if index % 2 == 0:
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            part = re.sub(r"([\\*_\[\]|])", r"\\\1", part)
        else:
            part = part.replace("|", "\\|")
        parts[index] = part
    return "".join(parts)


def _code(text: str) -> str:
    """``text`` as a code span in a table cell (pipes escaped, backticks in it allowed)."""
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def _cell(comment: list[str]) -> str:
    """Comment lines in one table cell: prose joined, indented example lines as code on lines of their own."""
    pieces: list[str] = []
    prose: list[str] = []
    for line in comment:
        if line.startswith("  ") and "`" not in line:
            if prose:
                pieces.append(_escape(" ".join(prose)))
                prose = []
            pieces.append(_code(line.strip()))
        else:
            prose.append(line.strip())
    if prose:
        pieces.append(_escape(" ".join(prose)))
    return "<br>".join(pieces)


def _paragraphs(comment: list[str]) -> list[str]:
    """A file's description: prose as a paragraph, indented example lines as a code block."""
    out: list[str] = []
    prose: list[str] = []
    examples: list[str] = []
    for line in [*comment, ""]:
        is_example = line.startswith("  ")
        if examples and not is_example:
            out += ["```bash", *examples, "```", ""]
            examples = []
        if prose and (is_example or not line):
            out += [_escape(" ".join(prose)), ""]
            prose = []
        if is_example:
            examples.append(line.strip())
        elif line:
            prose.append(line.strip())
    return out


def _file_section(parsed: ConfigFile, heading: str) -> list[str]:
    out = [heading, "", f"`{parsed.relative}`", ""]
    out += _paragraphs(parsed.description)
    if parsed.defaults:
        out += ["Composes: " + ", ".join(f"`{item}`" for item in parsed.defaults) + ".", ""]
    if parsed.entries:
        out += ["| key | default | meaning |", "|---|---|---|"]
        for entry in parsed.entries:
            key = ".".join((*parsed.package, *entry.path))
            out.append(f"| {_code(key)} | {_code(entry.default)} | {_cell(entry.comment)} |")
        out.append("")
    return out


# ------------------------------------------------------------------------------------ command keys

# The top-level groups of configs/, whose keys an entry config may set without owning them.
GROUPS = {path.name for path in CONFIGS.iterdir() if path.is_dir() and not path.name.startswith("_")}
# Each concept every command names by the same key (unet.utils.renamed_keys), and what a command
# without that key does instead.
CONCEPTS = [
    ("model file", "ckpt_path", "—"),
    ("where its result goes", "output", "its run directory (`hydra.run.dir`)"),
    ("device", "device", "—"),
    ("threads", "runtime.threads", "—"),
    ("mode", "mode", "—"),
]


@dataclass
class CommandKeys:
    """A command's own top-level keys, the entry configs it builds on, and its config groups."""

    name: str
    own: list[str]
    inherits: list[str]
    groups: list[str]


def command_keys(parsed: ConfigFile, entry_names: set[str]) -> CommandKeys:
    """The keys and groups an entry config's file names (its defaults list and its top-level keys; a
    key that sets a group's value, such as compare's ``paths.output_dir``, is not one of its own)."""
    data = yaml.safe_load(parsed.path.read_text()) or {}
    inherits, groups = [], []
    for item in data.get("defaults") or []:
        name = next(iter(item)) if isinstance(item, dict) else str(item)
        if name == "_self_":
            continue
        if not isinstance(item, dict) and name in entry_names:
            inherits.append(name)
        else:
            groups.append(name.split("@")[-1].replace("/", "."))
    own = [key for key in data if key not in ("defaults", "hydra", "task_name", *GROUPS)]
    return CommandKeys(parsed.app_name or parsed.path.stem, own, inherits, groups)


def _all_keys(command: CommandKeys, by_file: dict[str, CommandKeys]) -> set[str]:
    """A command's top-level keys and groups, those of the entry configs it builds on included."""
    keys = {*command.own, *command.groups}
    for name in command.inherits:
        keys |= _all_keys(by_file[name], by_file)
    return keys


def _link(app_name: str) -> str:
    return f"[{app_name}](#{app_name})"


def command_tables(entries: list[ConfigFile]) -> list[str]:
    """Two tables from the entry configs: each concept's key per command, and each command's keys;
    then the earlier spellings every command answers with the new one (unet.utils.renamed_keys)."""
    from unet.utils.renamed_keys import RENAMED_KEYS

    by_file = {parsed.path.stem: parsed for parsed in entries}
    commands = {stem: command_keys(parsed, set(by_file)) for stem, parsed in by_file.items()}
    out = [
        "## Every command's keys { #command-keys }",
        "",
        "One concept has one key in every command that has it:",
        "",
        "| command | " + " | ".join(concept for concept, _, _ in CONCEPTS) + " |",
        "|---" * (len(CONCEPTS) + 1) + "|",
    ]
    for command in commands.values():
        keys = _all_keys(command, commands)
        cells = [_code(key) if key.split(".")[0] in keys else absent for _, key, absent in CONCEPTS]
        out.append(f"| {_link(command.name)} | " + " | ".join(cells) + " |")
    out += ["", "| command | its keys | its config groups |", "|---|---|---|"]
    for command in commands.values():
        built_on = [by_file[name].app_name for name in command.inherits]
        own = ", ".join(_code(key) for key in command.own)
        groups = ", ".join(_code(group) for group in command.groups)
        out.append(
            f"| {_link(command.name)} | {_and_those_of(built_on, own)} | {_and_those_of(built_on, groups)} |"
        )
    out += [
        "",
        "A key of an earlier version is refused in one line naming its new spelling (exit code 2):",
        "",
        "| commands | earlier | now |",
        "|---|---|---|",
    ]
    for old, renamed in RENAMED_KEYS.items():
        names = ", ".join(by_file[name].app_name for name in renamed.commands if name in by_file)
        earlier = f"{old}=true" if renamed.flag else old
        now = _escape(renamed.new) if renamed.flag else _code(renamed.new)
        out.append(f"| {names} | {_code(earlier)} | {now} |")
    return [*out, ""]


def _and_those_of(built_on: list[str], listed: str) -> str:
    """A table cell: ``listed``, after "unet-train's" for a command built on unet-train's config."""
    inherited = " and ".join(f"{name}'s" for name in built_on)
    if inherited and listed:
        return f"{inherited}, and {listed}"
    return inherited or listed or "—"


def render(configs: Path = CONFIGS) -> str:
    """The whole reference page. Headings carry fixed anchors (#unet-train, #data-augment,
    #hydra-launcher-slurm) for the other pages to link to."""
    files = [parse(path, configs) for path in sorted(configs.rglob("*.yaml"))]
    entries = sorted((f for f in files if f.app_name), key=lambda f: f.app_name or "")
    groups: dict[str, list[ConfigFile]] = {}
    for parsed in files:
        if not parsed.app_name:
            groups.setdefault(parsed.path.parent.relative_to(configs).as_posix(), []).append(parsed)
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from configs/**/*.yaml by docs/gen_config_reference.py at every docs build: do not edit. -->",
        "",
        "Every key of every config file, with the default the file gives it and the comment written",
        "above it. Every key overrides on the command line as `key=value`, a group as `group=option`",
        "(`unet-train model/net=monai_basicunet data=folder data.root=DIR`); `<command> --cfg job` prints",
        "a composed config and `<command> --help` lists its groups and keys. `auto` is planned when a run",
        "starts ([Training and the plan](../training.md#the-plan)); `???` must be given.",
        "",
    ]
    out += command_tables(entries)
    out += [
        "## Commands",
        "",
        "Each command composes its entry config with the group options its `defaults` list names.",
        "",
    ]
    for parsed in entries:
        out += _file_section(parsed, f"### {parsed.app_name} {{ #{parsed.app_name} }}")
    out += [
        "## Config groups",
        "",
        "A group is a folder of `configs/`; its options are the files in it, chosen with `group=option`",
        "(`model/loss=focal`, `data/augment=microscopy`). The key column is where a key lands in the",
        "composed config.",
        "",
    ]
    for group, options in sorted(groups.items()):
        names = ", ".join(f"`{option.path.stem}`" for option in options)
        anchor = group.replace("/", "-")
        out += [f"### {group} {{ #{anchor} }}", "", f"Options: {names}.", ""]
        for parsed in options:
            out += _file_section(
                parsed, f"#### {group}={parsed.path.stem} {{ #{anchor}-{parsed.path.stem} }}"
            )
    return "\n".join(out).rstrip() + "\n"


def write(output: Path = OUTPUT) -> bool:
    """Write the reference; False when it was already up to date (so `mkdocs serve` does not loop)."""
    text = render()
    if output.exists() and output.read_text() == text:
        return False
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return True


def on_pre_build(config: Any) -> None:
    """mkdocs hook: the reference is written before mkdocs collects the pages."""
    write()


if __name__ == "__main__":
    print(f"{OUTPUT.relative_to(ROOT)}: {'written' if write() else 'up to date'}")
