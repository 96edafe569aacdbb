"""``omnicanal identity resolve`` end to end on a fresh database: normalisation links,
guards that stop links (with audit rows), CPF splits, stable ids across reruns, merges
that keep the older id, bad rows reported and skipped."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest

from omnicanal.cli import main

HEADER = [
    "record_id",
    "source",
    "email",
    "phone",
    "cpf",
    "first_name",
    "last_name",
    "birth_date",
    "city",
]

BASE = [
    # Ana: email case/spaces, phone without the ninth digit, formatted CPF
    ["a1", "shop", "Ana.Souza@Example.com ", "(11) 8787-4321", "", "Ana", "Souza", "", ""],
    ["a2", "crm", "", "+55 11 98787-4321", "529.982.247-25", "ANA", "SOUZA", "", ""],
    ["a3", "pos", "", "", "52998224725", "Ana", "Souza", "", ""],
    # Bruno alone
    ["b1", "shop", "bruno@example.com", "", "", "Bruno", "Lima", "", ""],
    # four different people typed the store's junk email: it links nobody
    ["t1", "pos", "teste@teste.com", "", "", "Carla", "Mendes", "", ""],
    ["t2", "pos", "TESTE@teste.com", "", "", "Davi", "Rocha", "", ""],
    # a household's phone: Eva and Fábio share it, their names do not fit: two people
    ["f1", "crm", "", "(21) 99876-5432", "111.444.777-35", "Eva", "Ramos", "", ""],
    ["f2", "crm", "", "21 99876 5432", "390.533.447-05", "Fábio", "Ramos", "", ""],
    # one name on a shared phone, two different valid CPFs: the CPF guard splits them
    ["g1", "crm", "", "(31) 99123-4567", "715.324.650-92", "Rui", "Campos", "", ""],
    ["g2", "pos", "", "31 99123 4567", "468.201.937-69", "RUI", "CAMPOS", "", ""],
    # invalid CPF links nothing
    ["x1", "crm", "", "", "111.444.777-36", "Gil", "Costa", "", ""],
    ["x2", "crm", "", "", "111.444.777-36", "Hugo", "Melo", "", ""],
]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_mapping(path: Path) -> dict[str, str]:
    with path.open() as handle:
        return {row["record_id"]: row["customer_id"] for row in csv.DictReader(handle)}


@pytest.fixture
def resolve(warehouse_env: str, tmp_path: Path):
    def run(rows: list[list[str]], name: str = "in") -> dict[str, str]:
        src = write_csv(tmp_path / f"{name}.csv", rows)
        out = tmp_path / f"{name}.out.csv"
        assert main(["identity", "resolve", str(src), "-o", str(out)]) == 0
        return read_mapping(out)

    return run


def test_resolve_links_guards_and_splits(resolve, warehouse_env: str) -> None:
    ids = resolve(BASE)
    assert ids["a1"] == ids["a2"] == ids["a3"]  # email/phone/CPF normalisation
    assert ids["b1"] != ids["a1"]
    assert ids["t1"] != ids["t2"]  # blocklisted email
    assert ids["f1"] != ids["f2"]  # a shared phone links compatible names only
    assert ids["g1"] != ids["g2"]  # two CPFs in one cluster: split
    assert ids["x1"] != ids["x2"]  # invalid CPF links nothing
    with psycopg.connect(warehouse_env) as conn:
        guards = {
            row[0]
            for row in conn.execute("select guard from identity_cli.int_identity__guard_audit")
        }
    assert "fake_identifier" in guards  # teste@teste.com, from seed identity_fake_identifiers
    assert "max_values_per_customer:cpf" in guards


def test_ids_are_stable_and_merges_keep_the_older_id(resolve, warehouse_env: str) -> None:
    # Bruno's second record: a phone and his name, nothing shared with his first
    bruno2 = ["b2", "crm", "", "(11) 96666-5555", "", "Bruno", "Lima", "", ""]
    first = resolve([*BASE, bruno2], "first")
    again = resolve([*BASE, bruno2], "again")
    assert again == first
    assert first["b1"] != first["b2"]
    # a new record, without a name, carrying both of Bruno's identifiers: a missing
    # name is nobody else, so his two customers merge
    bridge = ["m1", "app", "bruno@example.com", "11 96666 5555", "", "", "", "", ""]
    merged = resolve([*BASE, bruno2, bridge], "merged")
    assert merged["b1"] == merged["b2"] == merged["m1"]
    assert merged["b1"] in {first["b1"], first["b2"]}
    survivor, absorbed = merged["b1"], ({first["b1"], first["b2"]} - {merged["b1"]}).pop()
    with psycopg.connect(warehouse_env) as conn:
        events = conn.execute(
            "select customer_id, event, related_customer_id from identity_cli.customer_id_history"
            " where event = 'merge'"
        ).fetchall()
    assert (absorbed, "merge", survivor) in events
    # everyone else kept their id
    for record_id in ("a1", "a2", "a3", "t1", "t2", "f1", "f2", "g1", "g2", "x1", "x2"):
        assert merged[record_id] == first[record_id]


def test_split_records_lineage(resolve, warehouse_env: str) -> None:
    rows = [
        ["s1", "shop", "pat@example.com", "", "111.444.777-35", "Pat", "Reis", "", ""],
        ["s2", "shop", "pat@example.com", "", "", "Pat", "Reis", "", ""],
        ["s3", "shop", "pat@example.com", "", "", "Pat", "Reis", "", ""],
    ]
    first = resolve(rows, "one")
    assert len(set(first.values())) == 1
    # s3 now carries another CPF: the cluster holds two CPFs and is split
    rows[2][4] = "529.982.247-25"
    second = resolve(rows, "two")
    assert second["s3"] != second["s1"]
    assert second["s1"] == first["s1"]  # the id stays with the largest part
    with psycopg.connect(warehouse_env) as conn:
        events = conn.execute(
            "select customer_id, related_customer_id from identity_cli.customer_id_history"
            " where event = 'split'"
        ).fetchall()
    assert (second["s3"], first["s1"]) in events


def test_bad_rows_are_reported_not_fatal(warehouse_env: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "record_id,source,email\n"
        "1,shop,ana@example.com\n"
        ",shop,nobody@example.com\n"
        "2,shop\n"
        "1,shop,dup@example.com\n"
        "3,shop,ana@example.com\n"
    )
    out = tmp_path / "out.csv"
    assert main(["identity", "resolve", str(path), "-o", str(out)]) == 0
    mapping = read_mapping(out)
    assert set(mapping) == {"1", "3"}
    assert mapping["1"] == mapping["3"]
    err = capsys.readouterr().err
    assert "must not be empty" in err and "fields where the header" in err and "duplicate" in err


def test_values_are_trimmed_and_a_repeated_column_is_an_error(
    warehouse_env: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "spaces.csv"
    path.write_text(
        "record_id,source,email,nickname\n"
        " 1 ,shop ,ana@example.com,x\n"
        '2, pos,"  ANA@example.com ",y\n'
        "3,pos,,z\n"
        '"4,""b""",crm,ana@example.com,w\n'
    )
    out = tmp_path / "out.csv"
    assert main(["identity", "resolve", str(path), "-o", str(out)]) == 0
    mapping = read_mapping(out)
    assert list(mapping) == ["1", "2", "3", '4,"b"']  # as written, trimmed, in input order
    assert mapping["1"] == mapping["2"] == mapping['4,"b"'] != mapping["3"]
    path.write_text("record_id,source,email,EMAIL\n1,shop,a@example.com,b@example.com\n")
    assert main(["identity", "resolve", str(path), "-o", str(out)]) == 2
    assert "the header names email more than once" in capsys.readouterr().err


FUZZY_HEADER = [
    "record_id",
    "source",
    "email",
    "first_name",
    "last_name",
    "birth_date",
    "city",
    "postcode",
    "address",
]
FIRST = ["Bruno", "Carla", "Davi", "Eva", "Fábio", "Gil", "Hugo", "Iara", "Jonas", "Lia"]
LAST = ["Lima", "Costa", "Rocha", "Mendes", "Ramos", "Reis", "Melo", "Pires", "Dias", "Luz"]


def test_fuzzy_stage_links_records_without_identifiers(warehouse_env: str, tmp_path: Path) -> None:
    rows = [
        ["r1", "shop", "ana@example.com", "Ana", "Souza", "1990-05-12", "São Paulo",
         "01310-100", "Avenida Paulista, 1000"],
        # no identifier, shouting, accent-less, day and month as written in Brazil
        ["r2", "pos", "", "ANA", "SOUZA", "12/05/1990", "Sao Paulo", "01310100",
         "AVENIDA PAULISTA, 1000"],
        # same name, nothing else in common: another Ana Souza
        ["r3", "crm", "", "Ana", "Souza", "1985-01-01", "Recife", "50000-000",
         "Rua da Aurora, 12"],
    ]  # fmt: skip
    for i in range(40):  # a population for u and the EM sessions
        first, last = FIRST[i % 10], LAST[(i * 3) % 10]
        birth = f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        for copy, source in enumerate(("shop", "pos")):
            rows.append(
                [f"p{i}-{copy}", source, "", first if copy else first.upper(), last, birth,
                 "Curitiba", f"8{i:04d}-000", f"Rua {i}, {i * 7}"]
            )  # fmt: skip
    src = write_csv(tmp_path / "fuzzy.csv", rows, FUZZY_HEADER)
    out = tmp_path / "fuzzy.out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out)]) == 0
    ids = read_mapping(out)
    assert ids["r1"] == ids["r2"]
    assert ids["r3"] != ids["r1"]
    assert all(ids[f"p{i}-0"] == ids[f"p{i}-1"] for i in range(40))
    assert len({ids[f"p{i}-0"] for i in range(40)}) == 40


def test_a_name_typed_in_one_field_links_by_its_parts(warehouse_env: str, tmp_path: Path) -> None:
    """A loyalty form has one name field and no identifier: its last surname and the
    words before it are compared with split names (without them, another person born the
    same day in the same city ties with her); a partial name ("João" for "João Pedro")
    is a near agreement, not a disagreement."""
    born = {"birth_date": "1994-03-08", "city": "Campinas"}
    rows = [
        {"record_id": "web", "source": "shop", "email": "duda@example.com",
         "first_name": "Maria Eduarda", "last_name": "da Silva", **born},
        {"record_id": "form", "source": "loyalty", "full_name": "MARIA EDUARDA DA SILVA",
         **born},
        {"record_id": "other", "source": "crm", "email": "ana.p@example.com",
         "first_name": "Ana", "last_name": "Pereira", **born},
        {"record_id": "web2", "source": "shop", "email": "jp@example.com",
         "first_name": "João Pedro", "last_name": "Alves", "birth_date": "1988-07-30",
         "city": "Campinas"},
        {"record_id": "till2", "source": "pos", "first_name": "JOAO", "last_name": "ALVES",
         "birth_date": "1988-07-30"},
        *population(("shop", "loyalty")),
    ]  # fmt: skip
    ids = resolve_dicts(tmp_path, rows, "one_field")
    assert ids["web"] == ids["form"] != ids["other"]
    assert ids["web2"] == ids["till2"] != ids["web"]


def test_household_members_stay_apart_and_nicknames_link(
    warehouse_env: str, tmp_path: Path
) -> None:
    """Two men of one family at one address, with no birth date to tell them apart, are
    two people whatever else they share; "Bia" at the till is Beatriz from the web store
    (seed identity_name_variants) when her birth date and city agree."""
    home = {"city": "Belo Horizonte", "postcode": "30130-170",
            "address": "Rua da Bahia, 1148"}  # fmt: skip
    rows = [
        {"record_id": "carlos", "source": "shop", "email": "carlos.o@example.com",
         "first_name": "Carlos", "last_name": "Oliveira", **home},
        {"record_id": "joaquim", "source": "loyalty", "first_name": "Joaquim",
         "last_name": "Oliveira", **home},
        {"record_id": "beatriz", "source": "shop", "email": "beatriz@example.com",
         "first_name": "Beatriz", "last_name": "Souza", "birth_date": "1999-12-01",
         "city": "Recife"},
        {"record_id": "bia", "source": "pos", "first_name": "BIA", "last_name": "SOUZA",
         "birth_date": "01/12/1999", "city": "Recife"},
        *population(("shop", "loyalty")),
    ]  # fmt: skip
    ids = resolve_dicts(tmp_path, rows, "household")
    assert ids["carlos"] != ids["joaquim"]
    assert ids["beatriz"] == ids["bia"]


def test_incremental_run_recomputes_only_the_affected_clusters(resolve, warehouse_env: str) -> None:
    first = resolve(BASE, "first")
    # a sale with no name carrying Bruno's email and Ana's CPF: it cannot make Ana and
    # Bruno one customer (guard nameless_bridge); it goes with Ana, whose CPF it holds
    bridge = ["m1", "app", "bruno@example.com", "", "52998224725", "", "", "", ""]
    second = resolve([*BASE, bridge], "second")
    assert second["m1"] == second["a1"] == first["a1"]
    assert second["b1"] == first["b1"] != second["a1"]
    with psycopg.connect(warehouse_env) as conn:
        # this run's id (the invocation that listed its changes)
        (run_id,) = conn.execute(
            "select min(run_id) from identity_cli.int_identity__record_changes"
        ).fetchone()
        rewritten = {
            row[0]
            for row in conn.execute(
                "select record_key from identity_cli.int_identity__clusters where run_id = %s",
                (run_id,),
            )
        }
        changes = conn.execute(
            "select record_key, change from identity_cli.int_identity__record_changes"
        ).fetchall()
    # the new record, Ana's and Bruno's clusters; nobody else's component was touched
    assert rewritten == {"shop:a1", "crm:a2", "pos:a3", "shop:b1", "app:m1"}
    assert changes == [("app:m1", "new")]
    # a record gone from the input leaves the graph; the others keep their ids
    third = resolve([row for row in [*BASE, bridge] if row[0] != "x2"], "third")
    assert "x2" not in third
    assert all(third[key] == second[key] for key in third)
    with psycopg.connect(warehouse_env) as conn:
        left = conn.execute(
            "select count(*) from identity_cli.int_identity__record_customers"
            " where record_key = 'crm:x2'"
        ).fetchone()
    assert left == (0,)
    assert first["t1"] == third["t1"]


def partition(ids: dict[str, str]) -> set[frozenset[str]]:
    """The clusters of a mapping, whatever their customer_ids."""
    groups: dict[str, set[str]] = defaultdict(set)
    for record, customer in ids.items():
        groups[customer].add(record)
    return {frozenset(group) for group in groups.values()}


def population(sources: tuple[str, str] = ("shop", "pos")) -> list[dict[str, str]]:
    """Forty people with one record in each of two sources and no identifier: enough
    pairs for the fuzzy stage to learn its parameters."""
    rows = []
    for i in range(40):
        first, last = FIRST[i % 10], LAST[(i * 3) % 10]
        for copy, source in enumerate(sources):
            rows.append(
                {
                    "record_id": f"p{i}-{copy}",
                    "source": source,
                    "first_name": first if copy else first.upper(),
                    "last_name": last,
                    "birth_date": f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    "city": "Curitiba",
                    "postcode": f"8{i:04d}-000",
                    "address": f"Rua {i}, {i * 7}",
                }
            )
    return rows


def resolve_dicts(
    tmp_path: Path, rows: list[dict[str, str]], name: str, *options: str
) -> dict[str, str]:
    header = ["record_id", "source", "email", "phone", "full_name", *FUZZY_HEADER[3:]]
    table = [[row.get(column, "") for column in header] for row in rows]
    src = write_csv(tmp_path / f"{name}.csv", table, header)
    out = tmp_path / f"{name}.out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out), *options]) == 0
    return read_mapping(out)


ANA = {
    "first_name": "Ana",
    "last_name": "Souza",
    "birth_date": "1990-05-12",
    "city": "São Paulo",
    "postcode": "01310-100",
    "address": "Avenida Paulista, 1000",
}


def test_incremental_compares_the_pairs_of_a_split_component(
    warehouse_env: str, tmp_path: Path
) -> None:
    # a and b share no identifier; c (email of a, phone of b) puts them in one component,
    # so the fuzzy stage never compares them; once c is gone they must be compared
    rows = [
        {"record_id": "a", "source": "shop", "email": "ana@example.com", **ANA},
        {"record_id": "c", "source": "crm", "email": "ana@example.com", "phone": "(11) 98787-4321"},
        {"record_id": "b", "source": "pos", "phone": "11 98787-4321", **ANA, "first_name": "ANA"},
        *population(),
    ]
    first = resolve_dicts(tmp_path, rows, "first")
    assert first["a"] == first["b"] == first["c"]
    without_c = [row for row in rows if row["record_id"] != "c"]
    incremental = resolve_dicts(tmp_path, without_c, "second")
    full = resolve_dicts(tmp_path, without_c, "full", "--schema", "identity_cli_full")
    assert incremental["a"] == incremental["b"] == first["a"]
    assert partition(incremental) == partition(full)


def test_incremental_one_to_one_reranks_stored_pairs(warehouse_env: str, tmp_path: Path) -> None:
    # x (s1) first links to its only match y1 (s2); y2 (s2), a better match, arrives later:
    # one-to-one, x must now link to y2 alone, as a full run on the same records does
    options = ("--fuzzy", "within_source=false", "--fuzzy", "one_to_one_across_sources=true")
    x = {"record_id": "x", "source": "s1", **ANA}
    y1 = {"record_id": "y1", "source": "s2", **ANA, "address": "", "postcode": ""}
    y2 = {"record_id": "y2", "source": "s2", **ANA, "first_name": "ANA"}
    base = [x, y1, *population(("s1", "s2"))]
    first = resolve_dicts(tmp_path, base, "first", *options)
    assert first["x"] == first["y1"]
    second = resolve_dicts(tmp_path, [*base, y2], "second", *options)
    full = resolve_dicts(tmp_path, [*base, y2], "full", *options, "--schema", "identity_cli_full")
    assert second["x"] == second["y2"] != second["y1"]
    assert partition(second) == partition(full)


def test_fuzzy_override_errors_name_the_setting(
    warehouse_env: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = write_csv(tmp_path / "in.csv", BASE)
    out = tmp_path / "out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out), "--fuzzy", "treshold_weight=5"])
    assert "has no setting 'treshold_weight'; it has" in capsys.readouterr().err
    assert main(["identity", "resolve", str(src), "-o", str(out), "--fuzzy", "threshold_weight=hi"])
    assert "threshold_weight takes a float, got str" in capsys.readouterr().err
    assert not out.exists()


def test_whatsapp_wa_id_and_social_handles_link(warehouse_env: str, tmp_path: Path) -> None:
    header = ["record_id", "source", "phone", "wa_id", "instagram", "first_name", "last_name"]
    rows = [
        ["s1", "shop", "(11) 8787-4321", "", "", "Ana", "Souza"],
        # WhatsApp's wa_id of an account older than the ninth digit: the same phone
        ["w1", "whatsapp", "", "551187874321", "", "Ana", "S."],
        # the same Instagram handle, written as a handle and as a profile URL
        ["i1", "instagram", "", "", "@Ana.Souza", "Ana", ""],
        ["i2", "crm", "+55 11 98787-4321", "", "https://www.instagram.com/ana.souza/", "Ana", ""],
        ["w2", "whatsapp", "", "5521998765432", "não tem", "Bruno", "Lima"],
    ]
    src = write_csv(tmp_path / "social.csv", rows, header)
    out = tmp_path / "social.out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out)]) == 0
    ids = read_mapping(out)
    assert ids["s1"] == ids["w1"] == ids["i1"] == ids["i2"] != ids["w2"]
    with psycopg.connect(warehouse_env) as conn:
        types = conn.execute(
            "select distinct identifier_type, identifier_label"
            " from identity_cli.int_identity__identifiers"
            " where record_key in ('instagram:i1', 'crm:i2')"
            " order by 1, 2"
        ).fetchall()
    assert types == [("instagram", "@ana.souza"), ("phone", "+5511987874321")]
