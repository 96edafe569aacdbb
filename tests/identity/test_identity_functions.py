"""The installed SQL functions the identity models call, called directly: dbt installs
them (models/intermediate/identity/functions) once in a database of this module.
identity.connected_components gets an edges query, its labels compared with a
union-find in Python; identity.clusters gets a few records' edges, and each cluster
guard is checked on the records it exists for."""

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


GUARDS = {"max_values_per_customer": {"cpf": 1}, "max_cluster_size": 200}


def clusters(
    url: str,
    edges: list[tuple[int, str, str]],
    names: dict[int, str | None],
    guards: dict = GUARDS,
    scope: list[int] | None = None,
) -> dict[int, tuple[int, int, str | None]]:
    """node -> (lab, pre_guard_lab, guard) from identity.clusters. ``edges`` are (record,
    value, type), a fuzzy pair two rows of type 'fuzzy' with one value; every record of
    ``names`` (record -> full name, its first word the canonical first name) is its own
    deterministic component unless an identifier edge joins it to another."""
    det = components(url, [(n, f"{t}:{v}") for n, v, t in edges if t != "fuzzy"])
    with psycopg.connect(url) as conn:
        conn.execute("create temp table e (node bigint, v text, t text)")
        conn.execute("create temp table r (record_num bigint, name text, component_num bigint)")
        with conn.cursor().copy("copy e from stdin") as copy:
            for row in edges:
                copy.write_row(row)
        with conn.cursor().copy("copy r from stdin") as copy:
            for record, name in names.items():
                copy.write_row((record, name, det.get(record, record)))
        rows = conn.execute(
            "select * from identity.clusters("
            " %s,"
            " 'select node, hashtextextended(t || '':'' || v, 0) as value_id,"
            "  t as identifier_type from e',"
            " 'select record_num, component_num from r',"
            " 'select record_num, name as full_name_key,"
            "  split_part(name, '' '', 1) as first_name_canon from r',"
            " 'select node, t as identifier_type, hashtextextended(t || '':'' || v, 0)"
            "  as value_id from e where t <> ''fuzzy''',"
            " %s)",
            (
                None if scope is None else f"select unnest(array{scope}::bigint[]) as record_num",
                psycopg.types.json.Jsonb(guards),
            ),
        ).fetchall()
    return {node: (lab, pre, guard) for node, lab, pre, guard in rows}


def test_clusters_join_components_by_fuzzy_pairs(functions_db: str) -> None:
    edges = [(1, "ana@x", "email"), (2, "ana@x", "email"), (2, "p12", "fuzzy"), (3, "p12", "fuzzy")]
    got = clusters(functions_db, edges, {1: "ana lima", 2: "ana lima", 3: "ana l", 4: "bia"})
    assert got == {1: (1, 1, None), 2: (1, 1, None), 3: (1, 1, None)}  # 4: no edge, not here


def test_a_second_cpf_splits_a_cluster_per_cpf(functions_db: str) -> None:
    # Bia and Caio share a phone; each has a CPF: two people. Dora holds only the phone.
    edges = [
        (1, "111", "cpf"), (1, "bia@x", "email"), (2, "bia@x", "email"),
        (3, "222", "cpf"),
        (1, "9999", "phone"), (3, "9999", "phone"), (4, "9999", "phone"),
    ]  # fmt: skip
    got = clusters(functions_db, edges, {1: "bia s", 2: "bia s", 3: "caio s", 4: "dora s"})
    guard = "max_values_per_customer:cpf"
    assert got == {1: (1, 1, guard), 2: (1, 1, guard), 3: (3, 1, guard), 4: (4, 1, guard)}
    # no limit on CPFs: one cluster
    one = clusters(functions_db, edges, {1: "bia s", 2: "bia s", 3: "caio s", 4: "dora s"}, {})
    assert {lab for lab, _, _ in one.values()} == {1}


def test_a_nameless_record_does_not_bridge_two_people(functions_db: str) -> None:
    # Sônia's CPF and Marcos's mobile on one till sale with no name: Sônia and Marcos
    # stay apart, the sale goes with the CPF (the strongest identifier)
    edges = [
        (1, "333", "cpf"), (2, "333", "cpf"), (2, "8888", "phone"), (3, "8888", "phone"),
    ]  # fmt: skip
    names = {1: "sonia r", 2: None, 3: "marcos r"}
    got = clusters(functions_db, edges, names)
    assert got == {
        1: (1, 1, "nameless_bridge"),
        2: (1, 1, "nameless_bridge"),
        3: (3, 1, "nameless_bridge"),
    }
    off = clusters(functions_db, edges, names, {**GUARDS, "nameless_bridge": False})
    assert {lab for lab, _, _ in off.values()} == {1}


def test_a_cluster_too_large_keeps_its_strong_links_only(functions_db: str) -> None:
    edges = [(n, "7777", "phone") for n in (1, 2, 3)] + [(2, "e@x", "email"), (3, "e@x", "email")]
    got = clusters(functions_db, edges, {1: "a", 2: "a", 3: "a"}, {"max_cluster_size": 2})
    assert got == {
        1: (1, 1, "max_cluster_size"),
        2: (2, 1, "max_cluster_size"),
        3: (2, 1, "max_cluster_size"),
    }


def test_clusters_of_a_scope_only(functions_db: str) -> None:
    edges = [(1, "a@x", "email"), (2, "a@x", "email"), (3, "b@x", "email"), (4, "b@x", "email")]
    names = {1: "a", 2: "a", 3: "b", 4: "b"}
    assert clusters(functions_db, edges, names, scope=[3, 4]) == {
        3: (3, 3, None),
        4: (3, 3, None),
    }
