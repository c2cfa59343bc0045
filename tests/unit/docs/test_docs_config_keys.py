"""docs/configuration.md lists every key of the configuration: AppConfig's fields and, recursively, those of every
model nested in them (inside Optional, unions, lists and dicts too). A key counts as listed when the page shows, in
backticks, its dotted path (``router.cohorts.group_timeout_s``) or a dotted tail of it down to its bare name
(``settings.sampling.max_tokens``, ``max_tokens``); a leading placeholder such as ``<judge>.`` is ignored."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from serve_app.config import AppConfig

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PAGE = ROOT / "docs" / "configuration.md"


def nested_models(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds: itself, or inside Optional / Union / list / dict / Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in typing.get_args(annotation):
        yield from nested_models(argument)


def config_keys(model: type[BaseModel], prefix: str = "", seen: frozenset[type] = frozenset()) -> Iterator[str]:
    """Every dotted key path under ``model`` (a model nested in itself is walked once per path)."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        yield path
        for nested in nested_models(field.annotation):
            if nested not in seen:
                yield from config_keys(nested, f"{path}.", seen | {nested})


def documented_tails(text: str) -> set[tuple[str, ...]]:
    """The dotted names the page shows in backticks, as tuples of their parts."""
    tails = set()
    for token in re.findall(r"`([^`\s]+)`", text):
        parts = tuple(token.split("."))
        if parts and re.fullmatch(r"<[^>]+>", parts[0]):
            parts = parts[1:]
        if parts and all(re.fullmatch(r"\w+", part) for part in parts):
            tails.add(parts)
    return tails


def is_listed(path: str, tails: set[tuple[str, ...]]) -> bool:
    parts = tuple(path.split("."))
    return any(parts[-k:] in tails for k in range(1, len(parts) + 1))


def test_the_walk_finds_the_nested_models() -> None:
    """The walk reaches the models nested from deployments/ (hosting, judge settings), policies/ (selection) and the
    cohorts' settings, so a key added to any of them is held to this test."""
    keys = set(config_keys(AppConfig))
    for expected in (
        "principle.hosted.llm_config",
        "pairwise.endpoint.base_url",
        "pairwise.settings.sampling.max_tokens",
        "pairwise.settings.ranking_logprobs",
        "principle.verdict_family",
        "router.selection.weights.helpfulness",
        "router.cohorts.group_timeout_s",
        "router.trainers.slime.reply",
    ):
        assert expected in keys, expected
    assert len(keys) > 100


def test_every_config_key_is_documented() -> None:
    tails = documented_tails(PAGE.read_text())
    missing = [path for path in config_keys(AppConfig) if not is_listed(path, tails)]
    assert not missing, f"docs/configuration.md does not list these configuration keys: {missing}"
