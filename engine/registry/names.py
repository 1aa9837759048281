"""Registered-model names in Unity Catalog's three-level namespace, alias names, and the
other input rules of the registry's arguments (version numbers, tags, free text).

A model name is written `model` (= `main.default.model`), `schema.model`
(= `main.schema.model`) or `catalog.schema.model`: missing leading parts default to
`main` and `default`, so MLflow clients that register `iris` see `iris` again. A schema
name is written `catalog.schema`, or `schema` for `main.schema`.

Each part is 1-255 ASCII letters, digits, `_` or `-`: parts become LMDB keys, URL path
segments and CLI arguments, and this alphabet is safe in all three. The whole name is
at most 500 characters because the `model_names` key (parts joined by NUL) must fit
LMDB's 511-byte key limit.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from cairn.engine.errors import invalid
from cairn.engine.registry.contract import MAX_TAG_VALUE_LENGTH
from cairn.engine.tracking.validation import check_key

DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "default"
MAX_PART_LENGTH = 255
MAX_FULL_NAME_LENGTH = 500
MAX_ALIAS_LENGTH = 255
MAX_TEXT_LENGTH = 4096  # run_link, run_id, model_id, storage_location, source

_PART = re.compile(r"[A-Za-z0-9_-]+")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_VERSION_ALIAS = re.compile(r"[vV]\d+")
_PART_LABELS = {1: ("model",), 2: ("schema", "model"), 3: ("catalog", "schema", "model")}
_ALLOWED = "letters, digits, '_' and '-'"


class FullName(NamedTuple):
    catalog: str
    schema: str
    model: str

    @property
    def full(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.model}"

    @property
    def display(self) -> str:
        return display_name(self)

    def key(self) -> bytes:
        """The `model_names` key: parts joined by NUL, so byte order is (catalog,
        schema, model) order and a schema's models are one prefix."""
        return f"{self.catalog}\0{self.schema}\0{self.model}".encode()


def schema_prefix(catalog: str, schema: str) -> bytes:
    """The `model_names` prefix of one schema's models (also the `schemas` key)."""
    return f"{catalog}\0{schema}".encode()


def _describe_char(c: str) -> str:
    if c == " ":
        return "a space"
    if c.isprintable():
        return f"'{c}'"
    return f"the character {c!r}"


def _check_part(part: str, label: str, what: str, text: str) -> str:
    if not part:
        raise invalid(f"Invalid {what} name '{text}': the {label} part is empty. Use {_ALLOWED}.")
    if len(part) > MAX_PART_LENGTH:
        raise invalid(
            f"Invalid {what} name '{text}': the {label} part has {len(part)} characters; "
            f"at most {MAX_PART_LENGTH} are allowed."
        )
    bad = _BAD_CHAR.search(part)
    if bad:
        raise invalid(
            f"Invalid {what} name '{text}': the {label} part '{part}' contains "
            f"{_describe_char(bad.group())}; names may contain only {_ALLOWED}."
        )
    return part


def _split(text: object, what: str, max_parts: int, example: str) -> list[str]:
    if not isinstance(text, str) or text == "" or text.strip() == "":
        raise invalid(f"Missing value for required parameter 'name': the {what} name is empty.")
    parts = text.split(".")
    if len(parts) > max_parts:
        raise invalid(
            f"Invalid {what} name '{text}': it has {len(parts)} dot-separated parts; "
            f"at most {max_parts} are allowed ({example})."
        )
    return parts


def parse_model_name(name: object) -> FullName:
    """`iris`, `schema.iris` or `catalog.schema.iris` -> FullName; INVALID_PARAMETER_VALUE
    naming the name and what is wrong with it."""
    return parse_full_name(name, "registered model", "model")


def parse_full_name(name: object, what: str, leaf: str) -> FullName:
    """A three-level name of any securable (a registered model, a feature table): bare
    names land in `main.default`, two parts in catalog `main`. `what` and `leaf` name
    the kind in errors ("feature table", "table")."""
    parts = _split(name, what, 3, f"catalog.schema.{leaf}")
    labels = (*_PART_LABELS[len(parts)][:-1], leaf)
    for part, label in zip(parts, labels):
        _check_part(part, label, what, name)  # type: ignore[arg-type]
    if len(parts) == 1:
        full = FullName(DEFAULT_CATALOG, DEFAULT_SCHEMA, parts[0])
    elif len(parts) == 2:
        full = FullName(DEFAULT_CATALOG, parts[0], parts[1])
    else:
        full = FullName(*parts)
    if len(full.full) > MAX_FULL_NAME_LENGTH:
        raise invalid(
            f"Invalid {what} name '{name}': the full name '{full.full}' has "
            f"{len(full.full)} characters; at most {MAX_FULL_NAME_LENGTH} are allowed."
        )
    return full


def display_name(full: FullName | str) -> str:
    """How a model is shown: bare inside `main.default`, else `catalog.schema.model`."""
    if isinstance(full, str):
        full = parse_model_name(full)
    if full.catalog == DEFAULT_CATALOG and full.schema == DEFAULT_SCHEMA:
        return full.model
    return full.full


def check_catalog_name(name: object) -> str:
    """A catalog name: one part."""
    parts = _split(name, "catalog", 1, "a catalog name has no dots")
    return _check_part(parts[0], "catalog", "catalog", name)  # type: ignore[arg-type]


def parse_schema_name(name: object) -> tuple[str, str]:
    """`catalog.schema`, or `schema` for `main.schema` -> (catalog, schema)."""
    parts = _split(name, "schema", 2, "catalog.schema")
    if len(parts) == 1:
        return DEFAULT_CATALOG, _check_part(parts[0], "schema", "schema", name)  # type: ignore[arg-type]
    return (
        _check_part(parts[0], "catalog", "schema", name),  # type: ignore[arg-type]
        _check_part(parts[1], "schema", "schema", name),  # type: ignore[arg-type]
    )


def check_alias_name(alias: object) -> str:
    """An alias as MLflow spells it: 1-255 letters, digits, `_` or `-` (the reserved
    names are checked separately: reading `latest` is allowed, setting it is not)."""
    if not isinstance(alias, str) or alias == "":
        raise invalid("Registered model alias name cannot be empty.")
    if not _PART.fullmatch(alias):
        raise invalid(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, "
            "underscores (_), and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise invalid(
            f"Registered model alias name '{alias[:40]}...' exceeds the maximum length of "
            f"{MAX_ALIAS_LENGTH} characters."
        )
    return alias


def check_settable_alias(alias: object) -> str:
    """An alias that may be set: not `latest` (any case) and not `v<digits>`, which
    MLflow reserves for `models:/NAME@latest` and version references."""
    alias = check_alias_name(alias)
    if alias.lower() == "latest":
        raise invalid("'latest' alias name (case insensitive) is reserved.")
    if _VERSION_ALIAS.fullmatch(alias):
        raise invalid(f"Version alias name '{alias}' is reserved.")
    return alias


# -- other arguments --------------------------------------------------------------------
def version_number(version: object) -> int:
    """A version as MLflow accepts it (an int, or a string holding one)."""
    if not isinstance(version, bool) and isinstance(version, (int, str)):
        try:
            return int(version)
        except ValueError:
            pass
    raise invalid(f"Parameter 'version' must be an integer, got '{version}'.")


def check_text(value: object, what: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """Optional free text: None -> ""."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise invalid(f"Invalid value for parameter '{what}': a string of at most {limit} characters is required")
    return value


def tag_map(tags: object) -> dict[str, str]:
    """Tags given as a mapping or as key/value objects (or {"key", "value"} dicts); keys
    follow MLflow's tag-name rules, values are strings (None -> "")."""
    if tags is None:
        return {}
    if isinstance(tags, Mapping):
        pairs: Iterable = tags.items()
    else:
        pairs = ((t["key"], t.get("value")) if isinstance(t, Mapping) else (t.key, t.value) for t in tags)
    return {check_key(k, "key"): _tag_value(k, v) for k, v in pairs}


def _tag_value(key: str, value: object) -> str:
    value = "" if value is None else value
    if not isinstance(value, str):
        raise invalid(f"Invalid value for tag '{key}': a string is required")
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise invalid(f"Tag value for key '{key}' exceeds the maximum length of {MAX_TAG_VALUE_LENGTH} characters")
    return value
