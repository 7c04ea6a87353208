"""MaiBot's own layout: ``bot_config.toml`` and ``model_config.toml``, to and from a document."""

from __future__ import annotations

import tomllib
from typing import Any, Final

import tomli_w

from ...errors import InputError
from ...tables import agent_config as ac
from .shape import MODEL_RENAMES, SECTIONS, TOP, fields

TOML_NAMES: Final = {"persona": "personality", "bot_overrides": "bot"}


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}  # TOML has no null


def to_toml(document: dict[str, Any]) -> tuple[str, str]:
    """The document as MaiBot's (bot_config.toml, model_config.toml)."""
    bot: dict[str, Any] = {TOML_NAMES[k]: _clean(document[k]) for k in TOP}
    sections = dict(document["config_overrides"])
    model = sections.pop("model", {})
    bot.update({name: _clean(values) for name, values in sections.items()})
    models = {"api_providers": [_clean(p) for p in model.get("api_providers", [])],
              "models": [_clean(m) for m in model.get("models", [])],
              "model_task_config": model.get("model_task_config", {})}
    return tomli_w.dumps(bot), tomli_w.dumps(models)


def from_toml(bot_toml: str, model_toml: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """A partial document from MaiBot's TOML files, and the keys it skipped (MaiBot settings
    this schema has no column for, such as ``[inner]`` or ``[log]``)."""
    try:
        bot = tomllib.loads(bot_toml)
        model = tomllib.loads(model_toml) if model_toml else {}
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"not valid TOML: {err}") from err
    skipped: list[str] = []
    patch: dict[str, Any] = {"config_overrides": {}}
    by_toml = {v: k for k, v in TOML_NAMES.items()}
    for section, values in bot.items():
        target = TOP.get(by_toml.get(section, "")) or SECTIONS.get(section)
        if target is None or not isinstance(values, dict):
            skipped.append(section)
            continue
        known = set(fields(target))
        kept = {k: v for k, v in values.items() if k in known}
        skipped += [f"{section}.{k}" for k in values if k not in known]
        if section in by_toml:
            patch[by_toml[section]] = kept
        else:
            patch["config_overrides"][section] = kept
    if model:
        patch["config_overrides"]["model"] = _model_from_toml(model, skipped)
    return patch, skipped


def _model_from_toml(model: dict[str, Any], skipped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, target, renames in (("api_providers", ac.ApiProviderConfig, {}),
                                 ("models", ac.ModelInfoConfig, MODEL_RENAMES)):
        known = set(fields(target)) | set(renames)
        items = []
        given = model.get(key, [])
        if not isinstance(given, list):
            raise InputError(f"model_config.toml: {key} must be an array of tables "
                             f"([[{key}]]), got {type(given).__name__}")
        for i, item in enumerate(given):
            if not isinstance(item, dict):
                raise InputError(f"model_config.toml: {key}[{i}] must be a table, got "
                                 f"{type(item).__name__}")
            items.append({k: v for k, v in item.items() if k in known})
            skipped += [f"{key}[{i}].{k}" for k in item if k not in known]
        out[key] = items
    if "model_task_config" in model:
        out["model_task_config"] = model["model_task_config"]
    skipped += [k for k in model if k not in ("api_providers", "models", "model_task_config")]
    return out
