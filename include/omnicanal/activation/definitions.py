"""Sync definitions, read from the dbt exposures that analysts write.

An exposure whose ``meta`` has an ``omnicanal_sync`` block declares a sync::

    exposures:
      - name: mailchimp__recent_buyers
        depends_on: [ref('sync_mailchimp__recent_buyers')]
        meta:
          omnicanal_sync:
            destination: mailchimp
            model: sync_mailchimp__recent_buyers
            key: email
            fields: {email_address: email, FNAME: first_name, LNAME: last_name}

Keeping the definition in dbt means the segment, its documentation, its lineage and
where it goes live in one place, and analysts never write Python. We read the yml
files directly (no dbt parse needed), so a sync can run without a compiled manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from omnicanal.errors import SyncError

#: The schema that dbt builds models of ``marts/activation`` into.
ACTIVATION_SCHEMA = "activation"


@dataclass(frozen=True)
class SyncDefinition:
    name: str
    destination: str
    model: str
    key: str
    fields: dict[str, str]
    schema: str = ACTIVATION_SCHEMA
    source_file: str = ""
    options: dict | None = None

    @property
    def relation(self) -> str:
        return f'"{self.schema}"."{self.model}"'


def _from_exposure(exposure: dict, source_file: Path) -> SyncDefinition | None:
    meta = (exposure.get("meta") or {}).get("omnicanal_sync")
    if meta is None:
        meta = ((exposure.get("config") or {}).get("meta") or {}).get("omnicanal_sync")
    if meta is None:
        return None
    name = exposure.get("name", "?")
    where = f"exposure {name!r} in {source_file}"
    missing = [k for k in ("destination", "model", "key", "fields") if not meta.get(k)]
    if missing:
        raise SyncError(f"{where}: meta.omnicanal_sync lacks {', '.join(missing)}")
    fields = meta["fields"]
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise SyncError(
            f"{where}: meta.omnicanal_sync.fields must map destination fields to model "
            "columns, e.g. {email_address: email}"
        )
    known = {"destination", "model", "key", "fields", "schema"}
    return SyncDefinition(
        name=name,
        destination=str(meta["destination"]),
        model=str(meta["model"]),
        key=str(meta["key"]),
        fields=dict(fields),
        schema=str(meta.get("schema") or ACTIVATION_SCHEMA),
        source_file=str(source_file),
        options={k: v for k, v in meta.items() if k not in known},
    )


def load_definitions(dbt_project_dir: Path) -> dict[str, SyncDefinition]:
    """Every sync declared in the dbt project, by name."""
    found: dict[str, SyncDefinition] = {}
    for path in sorted((dbt_project_dir / "models").rglob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SyncError(f"{path} is not valid YAML: {exc}") from None
        for exposure in doc.get("exposures") or []:
            definition = _from_exposure(exposure, path)
            if definition is None:
                continue
            if definition.name in found:
                raise SyncError(
                    f"sync {definition.name!r} is declared twice: in "
                    f"{found[definition.name].source_file} and {path}"
                )
            found[definition.name] = definition
    return found


def get_definition(dbt_project_dir: Path, name: str) -> SyncDefinition:
    """The sync called ``name`` (its exposure name or its model name)."""
    definitions = load_definitions(dbt_project_dir)
    if name in definitions:
        return definitions[name]
    for definition in definitions.values():
        if definition.model == name:
            return definition
    known = ", ".join(sorted(definitions)) or "none"
    raise SyncError(f"no sync named {name!r}; the dbt project declares: {known}")
