from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from core.errors import InvalidInput
from core.passwords import hash_password, needs_rehash, verify_password

# Cheap parameters keep the suite fast; the default hasher is exercised once.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_default_hash_is_argon2id_and_verifies() -> None:
    digest = hash_password("correct horse battery")
    assert digest.startswith("$argon2id$")
    assert verify_password(digest, "correct horse battery")
    assert not verify_password(digest, "correct horse battery!")
    assert not needs_rehash(digest)


def test_salted_hashes_differ() -> None:
    assert hash_password("password123", hasher=FAST) != hash_password("password123", hasher=FAST)


@pytest.mark.parametrize("password", ["short", "        ", "x" * 1025])
def test_policy_refuses(password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        hash_password(password, hasher=FAST)
    assert caught.value.code == "weak_password"


@pytest.mark.parametrize("stored", ["", "not-a-hash", "$argon2id$v=19$m=1,t=1,p=1$broken"])
def test_corrupt_hashes_never_verify_nor_raise(stored: str) -> None:
    assert not verify_password(stored, "password123", hasher=FAST)


def test_weaker_parameters_need_rehash() -> None:
    assert needs_rehash(hash_password("password123", hasher=FAST))
    assert needs_rehash("garbage")
