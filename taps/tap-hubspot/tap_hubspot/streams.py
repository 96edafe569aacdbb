"""The HubSpot CRM objects this tap reads: one stream per object type.

Every stream has the same shape and the same sync (see ``client.py``): a full sync lists
the objects (``GET /crm/v3/objects/<type>``), an incremental one searches them on their
last-modified date in windows that stay under the search's 10,000-result cap. A record
is ``{"id", "created_at", "updated_at", "archived", "properties": {…}, "associations":
{"<type>": ["<id>", …]}}``: the object's properties as HubSpot returns them (strings or
null), and the ids of the objects associated with it, by type.
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import RetiresMissingOnFullSync, full_sync_due
from tap_hubspot.client import (
    BATCH_READ_SIZE,
    LIST_PAGE_SIZE,
    SEARCH_PAGE_SIZE,
    SEARCH_RESULT_CAP,
    HubSpotStream,
    Window,
    WindowPaginator,
    to_millis,
    to_utc_iso,
)

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context
    from singer_sdk.streams.rest import HTTPRequest, PageContext

_OWNER = ("hubspot_owner_id",)
_ENGAGEMENT_LINKS = ("contacts", "companies", "deals", "tickets")


class HubSpotObjectStream(RetiresMissingOnFullSync, HubSpotStream):
    """One CRM object type: listed on a full sync, searched on an incremental one."""

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    replication_key = "updated_at"
    #: A STATE every 200 records (a search page): an interrupted incremental sync
    #: resumes near where it stopped (the SDK's default is every 10,000).
    STATE_MSG_FREQUENCY = 200
    #: The object's properties the tap asks for (the last-modified one is added).
    properties: t.ClassVar[tuple[str, ...]]
    #: Object types whose associated ids each record carries.
    associated: t.ClassVar[tuple[str, ...]] = ()

    @classmethod
    def last_modified(cls) -> str:
        """Where HubSpot keeps the last modification: contacts have their own property."""
        return "lastmodifieddate" if cls.name == "contacts" else "hs_lastmodifieddate"

    @classmethod
    def requested(cls) -> list[str]:
        """Every property the tap asks for: the stream's, and the dates and id HubSpot adds."""
        return list(
            dict.fromkeys([*cls.properties, "createdate", cls.last_modified(), "hs_object_id"])
        )

    @property
    def modified_property(self) -> str:
        return self.last_modified()

    @property
    def all_properties(self) -> list[str]:
        return self.requested()

    @classmethod
    def build_schema(cls) -> dict:
        """The record: id, dates, the properties (strings, as HubSpot sends them) and the
        associated ids per object type."""
        props = th.PropertiesList(*(th.Property(name, th.StringType) for name in cls.requested()))
        links = th.PropertiesList(
            *(th.Property(name, th.ArrayType(th.StringType)) for name in cls.associated)
        )
        return th.PropertiesList(
            th.Property("id", th.StringType, required=True),
            th.Property("created_at", th.DateTimeType),
            th.Property("updated_at", th.DateTimeType, required=True),
            th.Property("archived", th.BooleanType),
            th.Property("properties", props),
            th.Property("associations", links),
        ).to_dict()

    # --- mode: list (full) or search (incremental) ----------------------------------

    def _searching(self, context: Context | None = None) -> bool:
        """An incremental sync: a bookmark, and no full sync due (the kit's rule: none
        for ``full_sync_every_days``, none cut short). Read from the tap's state, before
        the kit clears a due stream's bookmark and before the SDK's state manager asks
        :attr:`is_sorted`, so both see the same answer for the whole run."""
        state = (self.tap_state.get("bookmarks") or {}).get(self.name) or {}
        return not full_sync_due(state, self._tap.initialized_at, self.config)

    @property
    def is_sorted(self) -> bool:
        """Searches are sorted on the last-modified date, so each page can checkpoint;
        a list is in id order, so its bookmark is saved when the stream ends."""
        return self._search_mode

    @property
    def _search_mode(self) -> bool:
        """Decided once, on first use (the SDK asks is_sorted before the sync starts)."""
        if "_searches" not in self.__dict__:
            self.__dict__["_searches"] = self._searching()
        return self.__dict__["_searches"]

    @_search_mode.setter
    def _search_mode(self, value: bool) -> None:
        self.__dict__["_searches"] = value

    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        self._context = context
        self._emitted: dict[str, str] = {}
        start = self.config.get("start_date")
        self._start = to_utc_iso(start) if start else None
        yield from super().get_records(context)

    @property
    def http_method(self) -> str:  # type: ignore[override]
        return "POST" if self._search_mode else "GET"

    @property
    def path(self) -> str:  # type: ignore[override]
        suffix = "/search" if self._search_mode else ""
        return f"/crm/v3/objects/{self.name}{suffix}"

    @property
    def records_jsonpath(self) -> str:  # type: ignore[override]
        return "$.results[*]"

    def get_new_paginator(self) -> t.Any:
        if not self._search_mode:
            from singer_sdk.pagination import JSONPathPaginator

            return JSONPathPaginator("$.paging.next.after")
        bookmark = self.get_starting_replication_key_value(self._context)
        return WindowPaginator(
            Window(to_millis(bookmark)),
            page_size=self.search_page_size,
            cap=int(self.config.get("search_result_cap", SEARCH_RESULT_CAP)),
            modified=self.modified_property,
        )

    @property
    def search_page_size(self) -> int:
        return min(int(self.config.get("search_page_size", SEARCH_PAGE_SIZE)), SEARCH_PAGE_SIZE)

    # --- list ------------------------------------------------------------------------

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        if self._search_mode:
            return {}
        params: dict[str, t.Any] = {
            "limit": min(int(self.config.get("page_size", LIST_PAGE_SIZE)), LIST_PAGE_SIZE),
            "properties": ",".join(self.all_properties),
            "archived": "false",
        }
        if self.associated:
            params["associations"] = ",".join(self.associated)
        if next_page_token:
            params["after"] = next_page_token
        return params

    # --- search ----------------------------------------------------------------------

    def prepare_request_payload(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict | None:
        if not self._search_mode:
            return None
        window: Window = next_page_token
        modified = self.modified_property
        if window.tie_id is not None:
            filters = [
                {"propertyName": modified, "operator": "EQ", "value": str(window.start)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(window.tie_id)},
            ]
            sort = "hs_object_id"
        else:
            operator = "GT" if window.strict else "GTE"
            filters = [{"propertyName": modified, "operator": operator, "value": str(window.start)}]
            sort = modified
        body: dict[str, t.Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self.all_properties,
            "limit": self.search_page_size,
        }
        if window.after:
            body["after"] = str(window.after)
        return body

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """The SDK's request; a search first waits its turn under the per-second limit."""
        if self._search_mode:
            self.pace_search()
        return super().get_http_request(page=page)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        records = list(super().parse_response(response))
        if self._search_mode and self.associated and records:
            links = self.read_associations([r["id"] for r in records])
            for record in records:
                record["associations"] = {
                    to_type: links[to_type].get(record["id"], []) for to_type in self.associated
                }
        yield from records

    def read_associations(self, ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """``{to_type: {from_id: [to_id, …]}}`` through the v4 batch read (207: some ids
        have none, which is no error)."""
        found: dict[str, dict[str, list[str]]] = {}
        for to_type in self.associated:
            found[to_type] = {}
            for offset in range(0, len(ids), BATCH_READ_SIZE):
                chunk = ids[offset : offset + BATCH_READ_SIZE]
                body = self.post_json(
                    f"/crm/v4/associations/{self.name}/{to_type}/batch/read",
                    {"inputs": [{"id": i} for i in chunk]},
                    None,
                )
                for result in body.get("results") or []:
                    found[to_type][str(result["from"]["id"])] = sorted(
                        (str(to["toObjectId"]) for to in result.get("to") or []), key=int
                    )
        return found

    # --- records ---------------------------------------------------------------------

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """The API's record in the stream's shape; repeats and records before
        ``start_date`` are dropped."""
        updated = to_utc_iso(row["updatedAt"])
        if self._start and updated < self._start:
            return None
        if self._emitted.get(row["id"]) == updated:
            return None  # the boundary of a new search window: already emitted
        self._emitted[row["id"]] = updated
        links = row.get("associations") or {}
        associations = {}
        for to_type in self.associated:
            value = links.get(to_type) or []
            if isinstance(value, dict):  # the list's shape: {"results": [{"id", "type"}]}
                value = sorted({str(item["id"]) for item in value.get("results") or []}, key=int)
            associations[to_type] = value
        properties = row.get("properties") or {}
        return {
            "id": str(row["id"]),
            "created_at": to_utc_iso(row["createdAt"]) if row.get("createdAt") else None,
            "updated_at": updated,
            "archived": bool(row.get("archived", False)),
            "properties": {name: properties.get(name) for name in self.all_properties},
            "associations": associations,
        }


class ContactsStream(HubSpotObjectStream):
    """Contacts: the people the sales team works, as staff typed them."""

    name = "contacts"
    required_scope = "crm.objects.contacts.read"
    properties = (
        "email",
        "hs_additional_emails",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "hs_whatsapp_phone_number",
        "hs_email_optout",
        "company",
        "jobtitle",
        "address",
        "city",
        "state",
        "zip",
        "lifecyclestage",
        "hs_lead_status",
        *_OWNER,
    )
    associated = ("companies",)


class CompaniesStream(HubSpotObjectStream):
    """Companies: employers of contacts and business customers."""

    name = "companies"
    required_scope = "crm.objects.companies.read"
    properties = (
        "name",
        "domain",
        "industry",
        "phone",
        "city",
        "state",
        "country",
        "lifecyclestage",
        *_OWNER,
    )


class DealsStream(HubSpotObjectStream):
    """Deals: what the team sells, with stage, amount and close date."""

    name = "deals"
    required_scope = "crm.objects.deals.read"
    properties = (
        "dealname",
        "amount",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "closedate",
        "hs_is_closed",
        "hs_is_closed_won",
        *_OWNER,
    )
    associated = ("contacts", "companies")


class TicketsStream(HubSpotObjectStream):
    """Tickets: support cases, with their pipeline stage, source and close date."""

    name = "tickets"
    required_scope = "tickets"
    properties = (
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "hs_ticket_category",
        "source_type",
        "closed_date",
        *_OWNER,
    )
    associated = ("contacts", "companies", "deals")


class CallsStream(HubSpotObjectStream):
    """Calls logged by staff."""

    name = "calls"
    required_scope = "crm.objects.contacts.read"
    properties = (
        "hs_timestamp",
        "hs_call_title",
        "hs_call_body",
        "hs_call_direction",
        "hs_call_duration",
        "hs_call_status",
        *_OWNER,
    )
    associated = _ENGAGEMENT_LINKS


class EmailsStream(HubSpotObjectStream):
    """One-to-one emails logged on the CRM record."""

    name = "emails"
    required_scope = "sales-email-read"
    properties = (
        "hs_timestamp",
        "hs_email_subject",
        "hs_email_text",
        "hs_email_direction",
        "hs_email_status",
        *_OWNER,
    )
    associated = _ENGAGEMENT_LINKS


class NotesStream(HubSpotObjectStream):
    """Notes staff left on a record."""

    name = "notes"
    required_scope = "crm.objects.contacts.read"
    properties = ("hs_timestamp", "hs_note_body", *_OWNER)
    associated = _ENGAGEMENT_LINKS


class MeetingsStream(HubSpotObjectStream):
    """Meetings with customers."""

    name = "meetings"
    required_scope = "crm.objects.contacts.read"
    properties = (
        "hs_timestamp",
        "hs_meeting_title",
        "hs_meeting_body",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
        "hs_meeting_outcome",
        *_OWNER,
    )
    associated = _ENGAGEMENT_LINKS


STREAM_TYPES: tuple[type[HubSpotObjectStream], ...] = (
    ContactsStream,
    CompaniesStream,
    DealsStream,
    TicketsStream,
    CallsStream,
    EmailsStream,
    NotesStream,
    MeetingsStream,
)
