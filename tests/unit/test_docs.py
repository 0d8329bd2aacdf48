"""The documentation keeps up with the code: every setting, command, option, policy field and route
is documented, the generated API reference is current, and every relative link resolves."""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer.main
from starlette.routing import Route

from tocsin.cli.main import app as cli_app
from tocsin.config import Settings
from tocsin.policy.models import Policy, SeverityPolicy

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
# Documented once, in "Options every client command takes", rather than under each command.
COMMON_OPTIONS = {"--url", "--token", "--json", "--help"}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# Settings


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    variable = f"{prefix}{name}".upper()
    assert f"`{variable}`" in read(REFERENCE / "configuration.md"), (
        f"{variable} is not in docs/reference/configuration.md"
    )


# CLI


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path, command) under the Click command `command`, groups included."""
    # Duck-typed: Typer builds its commands on its own copy of Click's classes.
    found = [(path, command)] if path else []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(cli_app))


def _section(text: str, heading: str) -> str | None:
    """The text under a `### heading`, up to the next heading of any level."""
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^#{{1,3}} |\Z)", text, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else None


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_documented(path: tuple[str, ...], command: Any) -> None:
    name = "tocsin " + " ".join(path)
    text = read(REFERENCE / "cli.md")
    assert name in text, f"`{name}` is not in docs/reference/cli.md"
    if hasattr(command, "commands"):
        return
    section = _section(text, name)
    assert section is not None, f"docs/reference/cli.md has no `### {name}` section"
    for param in command.params:
        if param.param_type_name != "option":
            continue
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--") and opt not in COMMON_OPTIONS:
                assert opt in section, f"{name} {opt} is not documented under `### {name}`"


# Policy


@pytest.mark.parametrize("field", list(Policy.model_fields))
def test_every_policy_section_is_documented(field: str) -> None:
    assert f"### `{field}`" in read(REFERENCE / "policy.md"), (
        f"policy section `{field}` has no `### `{field}`` heading in docs/reference/policy.md"
    )


@pytest.mark.parametrize("field", [f for f in SeverityPolicy.model_fields if f != "key"])
def test_every_severity_field_is_documented(field: str) -> None:
    # `key` is not written in YAML: it is the severity's mapping key (P0, P1, ...).
    assert f"| `{field}` |" in read(REFERENCE / "policy.md"), (
        f"severity field `{field}` has no table row in docs/reference/policy.md"
    )


# HTTP API


@cache
def gen_api_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", ROOT / "scripts" / "gen_api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_api_docs", module)
    spec.loader.exec_module(module)
    return module


@cache
def api_paths() -> list[str]:
    app = gen_api_docs().build_app()
    paths = set(app.openapi()["paths"])
    # Routes outside the OpenAPI document (the ingest endpoints speak their senders' protocols).
    paths |= {r.path for r in app.routes if type(r) is Route and r.include_in_schema}
    return sorted(paths)


def test_every_api_path_is_documented() -> None:
    text = read(REFERENCE / "api.md")
    missing = [path for path in api_paths() if f" {path}`" not in text]
    assert not missing, f"not in docs/reference/api.md: {missing}"


def test_the_api_reference_is_generated_from_the_current_code() -> None:
    gen = gen_api_docs()
    current = gen.generated_part(read(REFERENCE / "api.md"))
    assert current == gen.render(gen.build_app()), (
        "docs/reference/api.md is out of date: run .venv/bin/python scripts/gen_api_docs.py"
    )


# Links

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def links(path: Path) -> list[tuple[bool, str]]:
    """(is an image, target) of every Markdown link outside code."""
    text = CODE_SPAN.sub("", FENCE.sub("", read(path)))
    return [(bang == "!", target) for bang, target in LINK.findall(text)]


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", read(path))):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def local(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for is_image, target in links(path):
        if is_image or not local(target):
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_images_exist() -> None:
    images = [(p, t) for p in markdown_files() for is_image, t in links(p) if is_image and local(t)]
    if not (DOCS / "img").is_dir():
        pytest.skip("docs/img/ does not exist yet: the console screenshots are added separately")
    missing = [f"{p.relative_to(ROOT)}: {t}" for p, t in images if not (p.parent / t).resolve().exists()]
    assert not missing, f"missing images: {missing}"
