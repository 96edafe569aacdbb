"""identity.connected_components, the installed SQL function the identity models call,
called directly: dbt installs it (model fn_identity__connected_components) once in a
database of this module, and each test passes it an edges query and compares the
labels with a union-find in Python."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sync_pipeline import run_dbt


@pytest.fixture(scope="module")
def functions_db(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with the identity functions installed by `dbt run`, and nothing else."""
    name = f"omnicanal_idfn_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(pg_admin_url, dbname=name)
    try:
        run_dbt(
            url,
            tmp_path_factory.mktemp("idfn"),
            (),
            "run",
            "--select",
            "path:models/intermediate/identity/functions",
        )
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def components(url: str, edges: list[tuple[int | None, object]]) -> dict[int, int]:
    """node -> lab from identity.connected_components over ``edges`` (node, value)."""
    with psycopg.connect(url) as conn:
        conn.execute("create temp table edges (node bigint, value_id text)")
        with conn.cursor().copy("copy edges (node, value_id) from stdin") as copy:
            for node, value in edges:
                copy.write_row((node, None if value is None else str(value)))
        rows = conn.execute(
            "select node, lab from identity.connected_components("
            "'select node, value_id from edges')"
        ).fetchall()
    labels = dict(rows)
    assert len(labels) == len(rows), "a node came back twice"
    return labels


def expected(edges: list[tuple[int | None, object]]) -> dict[int, int]:
    """Union-find: every node with a non-null edge -> the smallest node of its component."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_of_value: dict[object, int] = {}
    for node, value in edges:
        if node is None or value is None:
            continue
        parent.setdefault(node, node)
        if value in first_of_value:
            a, b = find(node), find(first_of_value[value])
            parent[max(a, b)] = min(a, b)
        else:
            first_of_value[value] = node
    return {node: find(node) for node in parent}


def test_a_chain_is_one_component_labelled_by_its_smallest_node(functions_db: str) -> None:
    # 500 nodes in a line, numbered out of order: label propagation alone needs
    # hundreds of passes (and gives up at 100); pointer jumping needs a handful
    order = list(range(1, 501))
    random.Random(7).shuffle(order)
    edges = [(n, f"v{i}") for i, n in enumerate(order)] + [
        (n, f"v{i + 1}") for i, n in enumerate(order[:-1])
    ]
    assert components(functions_db, edges) == {n: 1 for n in order}


def test_a_star_a_cycle_and_two_components(functions_db: str) -> None:
    edges = [
        # a star: one value (a shared phone) on five records
        *[(n, "phone") for n in (40, 12, 33, 17, 25)],
        # a cycle: 7 - 9 - 8 - 7
        (9, "a"), (7, "a"), (9, "b"), (8, "b"), (8, "c"), (7, "c"),
    ]  # fmt: skip
    assert components(functions_db, edges) == {
        **{n: 12 for n in (40, 12, 33, 17, 25)},
        **{n: 7 for n in (7, 8, 9)},
    }


def test_isolated_nodes_and_null_edges(functions_db: str) -> None:
    edges = [
        (5, "only mine"),  # a value nobody else holds: a component of one
        (6, None),  # a null value connects nothing (and is no node)
        (7, None),
        (None, "x"),  # nor does a null node
        (8, "x"),
    ]
    assert components(functions_db, edges) == {5: 5, 8: 8}


def test_a_random_graph_matches_union_find(functions_db: str) -> None:
    rng = random.Random(13)
    edges = [(rng.randrange(1, 3000), rng.randrange(0, 2500)) for _ in range(3000)]
    labels = components(functions_db, edges)
    assert labels == expected(edges)
    assert 1 < len(set(labels.values())) < len(labels)  # neither all apart nor all one


def test_an_empty_graph_and_a_bad_query(functions_db: str) -> None:
    assert components(functions_db, []) == {}
    with psycopg.connect(functions_db) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn, match="value_id"):
            conn.execute(
                "select * from identity.connected_components('select 1 as node, 2 as value')"
            )


def test_it_leaves_no_temp_table_behind(functions_db: str) -> None:
    with psycopg.connect(functions_db) as conn:
        conn.execute(
            "select * from identity.connected_components("
            "'select * from (values (1, 1), (2, 1)) as e (node, value_id)')"
        ).fetchall()
        left = conn.execute(
            "select relname from pg_class where relname like '\\_identity\\_cc\\_%'"
            " and relpersistence = 't'"
        ).fetchall()
    assert left == []
