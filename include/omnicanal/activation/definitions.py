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
            mode: mirror            # optional: mirror (default) | upsert | audience | message
            customer_column: customer_id   # optional: the column consent is checked on

Everything else in the block (``list_id``, ``audience_id``, ``tag``, ``group`` …) is an
option of the destination. The modes (what a run sends, see :data:`MODES`):

- ``mirror``: the destination holds the model's rows: adds, updates, and removes the
  keys that left the model, but only keys the ledger says this sync wrote and holds;
- ``upsert``: adds and updates, never removes a key because it left the model (the
  ledger keeps it as held, so it is not sent again if it comes back unchanged);
- ``audience``: membership of an audience, list, tag or group: adds and removes
  members (again only members this sync added); a removal takes away the membership,
  not the person (the destination gets ``mode`` in its options to know which call);
- ``message``: each key is sent at most once, ever (a message: the key carries the
  campaign window, e.g. ``<wa_id>:<campaign>:<week>``); a changed payload is not sent
  again and a key that leaves the model is only marked so in the ledger.

In every mode a person who does not consent to the destination's ``consent_channel``
(see :mod:`.destination`) is left out, and removed where the sync put them, upsert
included: a revocation is honoured everywhere a sync wrote (only ``message`` cannot
take back what was sent).

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

MIRROR, UPSERT, AUDIENCE, MESSAGE = "mirror", "upsert", "audience", "message"
#: What each mode does when a key leaves the model (see the module's docstring).
MODES = (MIRROR, UPSERT, AUDIENCE, MESSAGE)
DEFAULT_CUSTOMER_COLUMN = "customer_id"
#: Keys of ``meta.omnicanal_sync`` the engine reads; the rest are destination options.
ENGINE_KEYS = ("destination", "model", "key", "fields", "schema", "mode", "customer_column")


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
    mode: str = MIRROR
    customer_column: str = DEFAULT_CUSTOMER_COLUMN

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            where = f"exposure {self.name!r}"
            if self.source_file:
                where += f" in {self.source_file}"
            raise SyncError(
                f"{where}: meta.omnicanal_sync.mode {self.mode!r} is not a sync mode; "
                f"use one of {', '.join(MODES)} (default {MIRROR})"
            )

    @property
    def relation(self) -> str:
        return f'"{self.schema}"."{self.model}"'

    @property
    def removes_departed(self) -> bool:
        """Whether a key that left the model is removed from the destination."""
        return self.mode in (MIRROR, AUDIENCE)

    def destination_options(self) -> dict:
        """The destination's options, with the sync's ``mode`` (a destination of
        memberships removes only the membership in ``audience`` mode)."""
        return {**(self.options or {}), "mode": self.mode}


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
    for option in ("mode", "customer_column"):
        if option in meta and not isinstance(meta[option], str):
            raise SyncError(f"{where}: meta.omnicanal_sync.{option} must be a string")
    return SyncDefinition(
        name=name,
        destination=str(meta["destination"]),
        model=str(meta["model"]),
        key=str(meta["key"]),
        fields=dict(fields),
        schema=str(meta.get("schema") or ACTIVATION_SCHEMA),
        source_file=str(source_file),
        options={k: v for k, v in meta.items() if k not in ENGINE_KEYS},
        mode=str(meta.get("mode") or MIRROR),
        customer_column=str(meta.get("customer_column") or DEFAULT_CUSTOMER_COLUMN),
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
