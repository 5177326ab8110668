"""docs/emulator.md and docs/manifest.md cover every key they document, and their examples work."""

from __future__ import annotations

import dataclasses
import json
import re

import yaml

from i2v_pipeline.emulator.config import ENDPOINTS, EmulatorConfig, Faults

from .conftest import REPO

EMULATOR_DOC = (REPO / "docs" / "emulator.md").read_text(encoding="utf-8")


def _mentioned(name: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def test_emulator_doc_names_every_config_key_fault_and_endpoint() -> None:
    """Every EmulatorConfig field, Faults field and fault endpoint name is documented."""
    flat = {f.name for f in dataclasses.fields(EmulatorConfig)} - {"faults"}
    throttle = {n.removeprefix("throttle_") for n in flat if n.startswith("throttle_")}
    names = (flat - {f"throttle_{t}" for t in throttle}) | throttle | {"faults", "throttle"}
    names |= {f.name for f in dataclasses.fields(Faults)} | set(ENDPOINTS)
    missing = sorted(n for n in names if not _mentioned(n, EMULATOR_DOC))
    assert missing == []


def test_emulator_doc_names_every_debug_route() -> None:
    """The three debug routes the app serves are documented."""
    app = (REPO / "i2v_pipeline" / "emulator" / "app.py").read_text(encoding="utf-8")
    routes = set(re.findall(r'"(/_emulator/debug/\w+)"', app))
    assert len(routes) == 3 and all(r in EMULATOR_DOC for r in routes)


def test_emulator_doc_config_example_loads() -> None:
    """The full config example in docs/emulator.md is a config the emulator accepts."""
    block = EMULATOR_DOC.split("## Every config key", 1)[1].split("```yaml\n", 1)[1]
    raw = yaml.safe_load(block.split("```", 1)[0])
    config = EmulatorConfig.from_mapping(raw)
    assert config.throttle_scope == "account" and config.faults["video"].times == 1


def test_manifest_doc_names_every_schema_key() -> None:
    """Every property of manifest.schema.json, at any depth, appears in docs/manifest.md."""
    schema = json.loads((REPO / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))
    doc = (REPO / "docs" / "manifest.md").read_text(encoding="utf-8")
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert sorted(n for n in names if not _mentioned(n, doc)) == []
