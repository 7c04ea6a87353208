"""MaiBot's own layout: ``bot_config.toml`` and ``model_config.toml``, to and from a document."""

from __future__ import annotations

import tomllib
from typing import Any, Final

import tomli_w

from ...errors import InputError
from ...row import Row
from ...tables import agent_config as ac
from .shape import MASK, MODEL_RENAMES, SECTIONS, TOP, fields

TOML_NAMES: Final = {"persona": "personality", "bot_overrides": "bot"}
# MaiBot reads [inner].version and, when it differs from its template's, backs the file up and
# merges it into the template; a file without [inner] it cannot read. These are the versions
# of MaiBot 0.12's templates.
BOT_CONFIG_VERSION: Final = "6.21.8"
MODEL_CONFIG_VERSION: Final = "1.1.1"
# [inner] is the file format's version, not a setting: written on export, read past on import
_WRITTEN_ONLY: Final = "inner"


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}  # TOML has no null


def to_toml(document: dict[str, Any]) -> tuple[str, str]:
    """The document as MaiBot's (bot_config.toml, model_config.toml)."""
    bot: dict[str, Any] = {"inner": {"version": BOT_CONFIG_VERSION}}
    bot.update({TOML_NAMES[k]: _clean(document[k]) for k in TOP})
    sections = dict(document["config_overrides"])
    model = sections.pop("model", {})
    bot.update({name: _clean(values) for name, values in sections.items()})
    models = {"inner": {"version": MODEL_CONFIG_VERSION},
              "api_providers": [_clean(p) for p in model.get("api_providers", [])],
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
        if section == _WRITTEN_ONLY:
            continue
        target = TOP.get(by_toml.get(section, "")) or SECTIONS.get(section)
        if target is None or not isinstance(values, dict):
            skipped.append(section)
            continue
        known = set(fields(target))
        kept = _text_where_text(target, {k: v for k, v in values.items() if k in known})
        skipped += [f"{section}.{k}" for k in values if k not in known]
        if section in by_toml:
            patch[by_toml[section]] = kept
        else:
            patch["config_overrides"][section] = kept
    if model:
        patch["config_overrides"]["model"] = _model_from_toml(model, skipped)
    masked = [f"{name}: {where}" for name, parsed in (("bot_config.toml", bot),
                                                      ("model_config.toml", model))
              for where, value in _leaves(parsed) if value == MASK]
    if masked:
        raise InputError(f"{', '.join(masked)} hold {MASK!r}, the mask an export without "
                         "--reveal writes in place of a secret: put the real values there (or "
                         "export with --reveal); nothing was imported")
    return patch, list(dict.fromkeys(skipped))  # each once


def _leaves(value: Any, where: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items()
                for leaf in _leaves(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{where}[{i}]")]
    return [(where, value)]


def _text_where_text(target: type[Row], values: dict[str, Any]) -> dict[str, Any]:
    """An integer where the schema keeps text, as MaiBot's guides write ``qq_account =
    1145141919810``, is that text."""
    for k, v in values.items():
        if isinstance(v, int) and not isinstance(v, bool) and \
                target.model_fields[k].annotation in (str, str | None):
            values[k] = str(v)
    return values


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
    skipped += [k for k in model
                if k not in ("api_providers", "models", "model_task_config", _WRITTEN_ONLY)]
    return out
