"""CPF check digits: the warehouse trusts these to tell real CPFs from typos."""

from __future__ import annotations

import random

import pytest

from omnicanal.sandbox import World, cpf_is_valid, format_cpf
from omnicanal.sandbox.cpf import cpf_check_digits, random_cpf


@pytest.mark.parametrize(
    "cpf", ["529.982.247-25", "52998224725", "111.444.777-35", " 11144477735 "]
)
def test_known_valid_cpfs(cpf: str) -> None:
    assert cpf_is_valid(cpf)


@pytest.mark.parametrize(
    "cpf",
    ["529.982.247-26", "52998224752", "111.111.111-11", "00000000000", "1234567890", "", None],
)
def test_known_invalid_cpfs(cpf: str | None) -> None:
    assert not cpf_is_valid(cpf)


def test_check_digits_and_format() -> None:
    assert cpf_check_digits("529982247") == "25"
    assert format_cpf("52998224725") == "529.982.247-25"
    assert format_cpf("529.982.247-25") == "529.982.247-25"
    with pytest.raises(ValueError):
        format_cpf("123")


def test_random_cpfs_are_valid() -> None:
    rng = random.Random(3)
    assert all(cpf_is_valid(random_cpf(rng)) for _ in range(2000))


def test_every_generated_cpf_is_valid_and_unique(world: World) -> None:
    cpfs = [p.cpf for p in world.people]
    assert all(len(c) == 11 and c.isdigit() and cpf_is_valid(c) for c in cpfs)
    assert len(set(cpfs)) == len(cpfs)
