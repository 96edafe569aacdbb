"""The bare client: one httpx loop walking the pages a tap walks, parsing and counting.

    python bench/extract/bare.py JOB.json

JOB is what run.py writes: the channel, the tap's config (URL, credentials, start
date, page sizes) and, for Shopify, the extraction path and the bulk texts. It sends the
same requests as the tap (same endpoints, page sizes, filters, cursors; for Shopify the
tap's own GraphQL queries, from ``tap_shopify.queries``), parses every answer with
``json.loads`` and counts records, with no retries, schemas, state or output: the floor
an extract over HTTP cannot beat. Prints one JSON object: records per stream, requests,
seconds (from the first request to the last answer).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


class Bare:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=600)
        self.requests = 0
        self.records: Counter[str] = Counter()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests += 1
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response


# --- Shopify: GraphQL Admin API, paginated queries or bulk operations --------------------


def shopify(job: dict[str, Any]) -> Bare:
    from tap_shopify import queries

    config = job["config"]
    bare = Bare(config["api_url"], {"X-Shopify-Access-Token": config["access_token"]})
    path = f"/admin/api/{job['api_version']}/graphql.json"

    def graphql(query: str, variables: dict | None = None) -> dict:
        body = bare.call("POST", path, json={"query": query, "variables": variables or {}})
        answer = json.loads(body.content)
        if answer.get("errors"):
            raise SystemExit(f"Shopify answered errors: {answer['errors']}")
        return answer["data"]

    def list_more(listed: Any, item: dict) -> None:
        """The further pages of a list item's connections (a refund's line items)."""
        for connection in listed.connections:
            info = item[connection.field]["pageInfo"]
            while info["hasNextPage"]:
                more = graphql(
                    listed.more_query(connection), {"id": item["id"], "after": info["endCursor"]}
                )
                info = more["node"][connection.field]["pageInfo"]

    start = datetime.fromisoformat(config["start_date"].replace("Z", "+00:00"))
    search = queries.search_since(
        "updated_at", start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    for stream, resource_name, bulk_capable in job["streams"]:
        resource = getattr(queries, resource_name)
        if stream == "orders":
            graphql(job["scopes_query"])
        wanted = search if resource.filter_field else None
        if job["extraction"] == "bulk" and bulk_capable:
            started = graphql(job["bulk_run"], {"query": resource.bulk_query(wanted)})
            operation = started["bulkOperationRunQuery"]["bulkOperation"]
            interval = min(1.0, job["poll_interval"])
            while operation["status"] not in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED"):
                time.sleep(interval)
                interval = min(interval * 2, job["poll_interval"])
                operation = graphql(job["bulk_poll"], {"id": operation["id"]})["node"]
            if operation["status"] != "COMPLETED":
                raise SystemExit(f"bulk operation ended {operation['status']}")
            if operation.get("url"):
                lines = httpx.get(operation["url"], timeout=600).content.splitlines()
                bare.requests += 1
                roots = [row for row in map(json.loads, lines) if "__parentId" not in row]
                bare.records[stream] += len(roots)
                # connections inside a list field: by nodes(ids:), full batches in order
                for listed in resource.lists:
                    ids = [item["id"] for row in roots for item in row.get(listed.field) or []]
                    batch = listed.items_batch()
                    for start in range(0, len(ids), batch):
                        found = graphql(listed.items_query(), {"ids": ids[start : start + batch]})
                        for item in found["nodes"]:
                            list_more(listed, item)
            continue
        first = resource.page_size_for(int(config.get("page_size", queries.MAX_PAGE_SIZE)))
        page_query, after = resource.page_query(), None
        while True:
            variables: dict[str, Any] = {"first": first, "after": after}
            if resource.filter_field:
                variables["query"] = wanted
            page = graphql(page_query, variables)[resource.root]
            for node in page["nodes"]:
                bare.records[stream] += 1
                for listed in resource.lists:
                    for item in node[listed.field]:
                        list_more(listed, item)
                for connection in resource.connections:
                    info = node[connection.field]["pageInfo"]
                    while info["hasNextPage"]:
                        more = graphql(
                            resource.more_query(connection),
                            {"id": node["id"], "after": info["endCursor"]},
                        )
                        info = more["node"][connection.field]["pageInfo"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    return bare


# --- Square: Connect v2 lists and searches, cursor in the body ---------------------------


def square_time(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def square(job: dict[str, Any]) -> Bare:
    config = job["config"]
    bare = Bare(
        config["api_url"],
        {
            "Authorization": f"Bearer {config['access_token']}",
            "Square-Version": config["api_version"],
            "Accept": "application/json",
        },
    )
    start = square_time(datetime.fromisoformat(config["start_date"].replace("Z", "+00:00")))
    page_size, orders_page_size = 100, int(config.get("orders_page_size", 500))

    def walk(stream: str, key: str, method: str, path: str, payload: dict) -> list[dict]:
        cursor, found = None, []
        while True:
            if method == "POST":
                body = {**payload, **({"cursor": cursor} if cursor else {})}
                answer = json.loads(bare.call("POST", path, json=body).content)
            else:
                params = {**payload, **({"cursor": cursor} if cursor else {})}
                answer = json.loads(bare.call("GET", path, params=params).content)
            found += answer.get(key, [])
            bare.records[stream] += len(answer.get(key, []))
            cursor = answer.get("cursor")
            if not cursor:
                return found

    money = {"begin_time": start, "sort_field": "UPDATED_AT", "sort_order": "ASC"}
    money |= {"limit": page_size, "updated_at_begin_time": start}
    locations = walk("locations", "locations", "GET", "/v2/locations", {})
    customers = {"sort": {"field": "CREATED_AT", "order": "ASC"}}
    customers["filter"] = {"updated_at": {"start_at": start}}
    walk(
        "customers",
        "customers",
        "POST",
        "/v2/customers/search",
        {"limit": page_size, "query": customers},
    )
    for location in locations:
        query = {
            "filter": {
                "state_filter": {"states": ["OPEN", "COMPLETED", "CANCELED"]},
                "date_time_filter": {"updated_at": {"start_at": start}},
            },
            "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
        }
        body = {"location_ids": [location["id"]], "limit": orders_page_size, "query": query}
        walk("orders", "orders", "POST", "/v2/orders/search", body)
        walk(
            "payments", "payments", "GET", "/v2/payments", {**money, "location_id": location["id"]}
        )
    walk("refunds", "refunds", "GET", "/v2/refunds", money)
    walk("catalog_items", "objects", "GET", "/v2/catalog/list", {"types": "ITEM"})
    return bare


# --- VTEX: OMS list by creation-date windows with each order's detail; CL scroll --------


def vtex_ms(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def vtex(job: dict[str, Any]) -> Bare:
    config = job["config"]
    bare = Bare(
        config["api_url"],
        {
            "X-VTEX-API-AppKey": config["app_key"],
            "X-VTEX-API-AppToken": config["app_token"],
            "Accept": "application/json",
        },
    )
    per_page, max_pages, ms = 100, 30, timedelta(milliseconds=1)
    start = datetime.fromisoformat(config["start_date"].replace("Z", "+00:00"))
    end = datetime.now(UTC) + timedelta(minutes=1)
    floor = lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000)  # noqa: E731
    windows = [(floor(start), floor(end))]  # the next one last, as the tap walks them
    while windows:
        low, high = windows.pop()
        page = 1
        while True:
            params = {
                "f_creationDate": f"creationDate:[{vtex_ms(low)} TO {vtex_ms(high)}]",
                "orderBy": "creationDate,asc",
                "page": page,
                "per_page": per_page,
            }
            answer = json.loads(bare.call("GET", "/api/oms/pvt/orders", params=params).content)
            pages = int(answer["paging"]["pages"])
            if page == 1 and pages > max_pages:  # split the window, as the tap does
                middle = low + ms * (((high - low) // ms) // 2)
                windows += [(middle + ms, high), (low, middle)]
                break
            for summary in answer["list"]:
                json.loads(bare.call("GET", f"/api/oms/pvt/orders/{summary['orderId']}").content)
                bare.records["orders"] += 1
            if page >= pages:
                break
            page += 1
    until = datetime.now(UTC) + timedelta(days=1)
    params = {
        "_size": 1000,
        "_fields": job["customer_fields"],
        "_sort": "updatedIn ASC",
        "_where": f"updatedIn between {vtex_ms(start)} AND {vtex_ms(until)}",
    }
    response = bare.call("GET", "/api/dataentities/CL/scroll", params=params)
    token = response.headers["X-VTEX-MD-TOKEN"]
    while documents := json.loads(response.content):
        bare.records["customers"] += len(documents)
        response = bare.call("GET", "/api/dataentities/CL/scroll", params={"_token": token})
    return bare


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())  # noqa: SIM115
    started = time.perf_counter()
    bare = {"shopify": shopify, "square": square, "vtex": vtex}[job["channel"]](job)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"records": dict(bare.records), "requests": bare.requests, "seconds": round(seconds, 3)}
        )
    )


if __name__ == "__main__":
    main()
