"""Anchor (c): a bare psycopg COPY of the same rows into a prepared table.

What the simplest hand-written loader does: json.loads each line, pick the columns,
``copy.write_row`` into a table created beforehand with the right types. No validation,
no merge, no metadata: the floor any Singer target pays for reading and sending rows.
"""

from __future__ import annotations

import argparse
import json
import sys

import psycopg
from generate import COLUMNS
from psycopg import sql
from psycopg.types.json import Jsonb

JSON_COLUMNS = {name for name, kind in COLUMNS if kind == "jsonb"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--input", required=True)
    args = parser.parse_args()
    names = [name for name, _ in COLUMNS]
    with psycopg.connect(args.url) as conn:
        conn.execute("create schema if not exists raw_bench")
        conn.execute(
            sql.SQL("create table raw_bench.orders ({})").format(
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(k)) for n, k in COLUMNS
                )
            )
        )
        copy_sql = sql.SQL("copy raw_bench.orders ({}) from stdin").format(
            sql.SQL(", ").join(map(sql.Identifier, names))
        )
        with conn.cursor() as cur, cur.copy(copy_sql) as copy, open(args.input) as lines:
            for line in lines:
                message = json.loads(line)
                if message.get("type") != "RECORD":
                    continue
                rec = message["record"]
                copy.write_row(
                    [
                        Jsonb(rec.get(n))
                        if n in JSON_COLUMNS and rec.get(n) is not None
                        else rec.get(n)
                        for n in names
                    ]
                )
    sys.exit(0)


if __name__ == "__main__":
    main()
