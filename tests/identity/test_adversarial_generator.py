"""The adversarial identity file (bench/identity/adversarial.py): deterministic per seed,
built apart from the sandbox, every noise kind occurring in its stated proportion and
visible in the records, and ground truth that the records agree with."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "identity"
sys.path.insert(0, str(BENCH))

import adversarial  # noqa: E402

from omnicanal.identity.resolve import INPUT_COLUMNS  # noqa: E402

PEOPLE = 3000


@pytest.fixture(scope="module")
def data() -> adversarial.Dataset:
    return adversarial.generate(PEOPLE, seed=11)


def _rows(data: adversarial.Dataset) -> list[tuple[str, dict, list[str]]]:
    return [
        (person, dict(zip(adversarial.COLUMNS, row, strict=True)), tags)
        for (person, row), tags in zip(data.rows, data.tags, strict=True)
    ]


def _digits(value: str | None) -> str:
    return "".join(c for c in value or "" if c.isdigit())


def test_deterministic_per_seed(data: adversarial.Dataset) -> None:
    again = adversarial.generate(PEOPLE, seed=11)
    assert again.rows == data.rows
    assert again.tags == data.tags
    assert again.noise.hits == data.noise.hits
    other = adversarial.generate(PEOPLE, seed=12)
    assert other.rows != data.rows


def test_shape_and_size(data: adversarial.Dataset) -> None:
    assert set(adversarial.COLUMNS) <= set(INPUT_COLUMNS)
    assert len(data.people) == PEOPLE
    assert 1.9 < len(data.rows) / PEOPLE < 2.4  # ~42k records from 20k people
    keys = [(row[1], row[0]) for _, row in data.rows]
    assert len(set(keys)) == len(keys)
    assert Counter(row[1] for _, row in data.rows).keys() == adversarial.SOURCES.keys()


def test_generator_shares_no_code_with_the_sandbox() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import adversarial;"
        "adversarial.generate(50, seed=1);"
        "bad = [m for m in sys.modules if m.startswith('omnicanal')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(BENCH)], check=True)


def test_every_noise_kind_occurs_in_its_stated_proportion(data: adversarial.Dataset) -> None:
    trials, hits = data.noise.trials, data.noise.hits
    assert set(trials) == set(adversarial.NOISE), "a noise kind is never drawn"
    for kind, p in adversarial.NOISE.items():
        n = trials[kind]
        assert hits[kind] > 0, kind
        if n >= 100:
            sigma = math.sqrt(n * p * (1 - p))
            assert abs(hits[kind] - n * p) <= 4.5 * sigma + 1, (kind, hits[kind], n, p)


def _near(count: int, n: int, p: float) -> bool:
    return n > 50 and abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1


def test_proportions_measured_in_the_records(data: adversarial.Dataset) -> None:
    """The stated proportions, counted from the records and people themselves (not from
    the generator's own counters)."""
    rows = [r for _, r, _ in _rows(data)]
    till_cpfs = [r["cpf"] for r in rows if r["source"] == "pdv" and r["cpf"]]
    fake = sum(c in adversarial.FAKE_CPFS for c in till_cpfs)
    assert _near(fake, len(till_cpfs), adversarial.NOISE["cpf_fake"])
    wa_ids = [r["wa_id"] for r in rows if r["wa_id"]]
    assert _near(sum(len(w) == 12 for w in wa_ids), len(wa_ids), adversarial.NOISE["wa_no_ninth"])
    with_email = [p for p in data.people if p.emails]
    assert _near(len(with_email), len(data.people), 1 - adversarial.NOISE["no_email"])
    several = sum(len(p.emails) >= 2 for p in with_email)
    assert _near(several, len(with_email), adversarial.NOISE["second_email"])
    homes: dict[str, list] = defaultdict(list)
    for p in data.people:
        homes[p.household_id].append(p)
    shared = [members for members in homes.values() if len(members) >= 2]
    landlines = sum(members[0].landline is not None for members in shared)
    assert _near(landlines, len(shared), adversarial.NOISE["household_landline"])
    form_births = [r["birth_date"] for r in rows if r["source"] == "fidelidade"]
    assert all(b is None or (b[2] == "/" and b[5] == "/") for b in form_births)


def test_noise_is_visible_in_the_records(data: adversarial.Dataset) -> None:
    rows = _rows(data)
    by_tag = Counter(tag for _, _, tags in rows for tag in tags)
    # fake CPFs at the till pass the check digits, in the records as typed
    fakes = [r["cpf"] for _, r, t in rows if "fake_cpf" in t]
    assert fakes and set(fakes) <= set(adversarial.FAKE_CPFS)
    assert all(r["source"] == "pdv" for _, r, t in rows if "fake_cpf" in t)
    assert sum(adversarial.cpf_valid(c) for c in fakes) == len(fakes)
    # mobiles without the ninth digit: eight digits after the area code, beginning 6-9
    no_ninth = [r for _, r, t in rows if "no_ninth_digit" in t and r["wa_id"]]
    assert no_ninth and all(len(r["wa_id"]) == 12 for r in no_ninth)
    assert {r["wa_id"][4] for r in no_ninth} <= set("6789")

    # nicknames, placeholders, names that are an email's local part
    def key(name: str) -> str:  # as typed: accents and case vary
        return adversarial._unaccent(name).lower()

    nicknames = {key(n) for names in adversarial.NICKNAMES.values() for n in names}
    nicked = [r["full_name"] for _, r, t in rows if "nickname" in t]
    assert nicked and all(key(name.split()[0]) in nicknames for name in nicked)
    placeholders = [r["first_name"] for _, r, t in rows if "placeholder_name" in t]
    assert set(placeholders) - {None} <= set(adversarial.PLACEHOLDER_NAMES)
    assert any(
        r["full_name"] and "@" not in r["full_name"] and r["email"] and "." in r["full_name"]
        for _, r, t in rows
        if "name_is_email" in t
    )
    # records with no identifier at all, most from the paper form
    bare = [r for _, r, t in rows if "no_identifier" in t]
    assert bare and all(not (r["email"] or r["phone"] or r["wa_id"] or r["cpf"]) for r in bare)
    assert Counter(r["source"] for r in bare).most_common(1)[0][0] == "fidelidade"
    for tag in ("household_landline", "borrowed_mobile", "old_number", "secondary_email",
                "household_email", "operator_cpf", "store_phone", "junk_email", "maiden_name",
                "cpf_typo", "email_typo", "birth_swap", "postcode_typo"):  # fmt: skip
        assert by_tag[tag] > 0, tag


def test_names_follow_the_published_frequencies(data: adversarial.Dataset) -> None:
    women = [p for p in data.people if p.sex == "F"]
    marias = sum(p.given.split()[0] == "Maria" for p in women) / len(women)
    expected = dict(adversarial.FEMALE)["Maria"] / sum(w for _, w in adversarial.FEMALE)
    assert abs(marias - expected) < 0.05
    compound = sum(" " in p.given for p in data.people) / len(data.people)
    assert compound > 0.1
    surnames = Counter(
        s.split()[-1] for p in data.people for s in p.surnames if s not in adversarial.AGNOMES
    )
    assert [name for name, _ in surnames.most_common(2)] == ["Silva", "Santos"]
    particles = sum(any(" " in s for s in p.surnames) for p in data.people)
    assert particles > 0.15 * len(data.people)


def test_ground_truth_agrees_with_the_records(data: adversarial.Dataset) -> None:
    people = {p.person_id: p for p in data.people}
    fakes = {_digits(c) for c in data.fake_cpfs}
    records_of: dict[str, int] = defaultdict(int)
    for person_id, r, tags in _rows(data):
        person = people[person_id]
        records_of[person_id] += 1
        cpf = _digits(r["cpf"])
        if cpf and "cpf_typo" not in tags:
            assert cpf == person.cpf or cpf in fakes, (person_id, r)
            assert (cpf in fakes) == bool({"fake_cpf", "operator_cpf"} & set(tags))
        if r["email"] and not {"junk_email", "email_typo"} & set(tags):
            email = r["email"].strip().lower()
            assert email in person.emails or email == person.household_email, (person_id, r)
        phone = _digits(r["phone"]) or _digits(r["wa_id"])
        if phone and "store_phone" not in tags:
            own = [*person.mobiles, person.landline, person.old_number]
            own += [m for housemate in person.housemates for m in housemate.mobiles]
            assert any(n and n[-8:] == phone[-8:] for n in own), (person_id, r)
        if r["postcode"] and "postcode_typo" not in tags:
            assert _digits(r["postcode"]) == person.postcode
    assert set(records_of) == set(people)  # everyone left at least one record
    # households share an address; CPFs are one per person
    households: dict[str, set[str]] = defaultdict(set)
    for p in data.people:
        households[p.household_id].add(p.postcode)
    assert all(len(codes) == 1 for codes in households.values())
    assert len({p.cpf for p in data.people}) == len(data.people)
    # a recycled number is another household's customer's mobile now
    mobile_owner = {p.mobiles[0]: p for p in data.people}
    recycled = [p for p in data.people if p.old_number in mobile_owner]
    assert recycled
    assert all(mobile_owner[p.old_number].household_id != p.household_id for p in recycled)
