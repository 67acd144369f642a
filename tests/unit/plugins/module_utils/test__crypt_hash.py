# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SHA-512 crypt: the built-in implementation against the specification's test vectors, the ``crypt``
module and passlib (oracles we did not write)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import crypt_hash as _crypt_hash
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.crypt_hash import sha512_crypt, sha512_crypt_builtin, verify_password
from ansible_collections.virtops.libvirt.tests.unit.plugins.module_utils.crypt_oracles import crypt, passlib_sha512


# from the specification "Unix crypt using SHA-256 and SHA-512" (U. Drepper), SHA-512 test vectors
SPEC_VECTORS = [
    ("Hello world!", "saltstring", None,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("This is just a test", "toolongsaltstring", 5000,
     "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
    ("a very much longer text to encrypt.  This one even stretches over morethan one line.", "anotherlongsaltstring", 1400,
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
    ("we have a short salt string but not a short password", "short", 77777,
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"),
    ("a short string", "asaltof16chars..gaga", 123456,
     "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"),
    ("the minimum number is still observed", "roundstoolow", 10,
     "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
]


@pytest.mark.parametrize("password,salt,rounds,expected", SPEC_VECTORS)
def test_sha512_crypt_spec_vectors(password, salt, rounds, expected):
    assert sha512_crypt_builtin(password, salt, rounds) == expected
    assert sha512_crypt(password, salt[:16], rounds) == expected
    assert verify_password(password, expected) and not verify_password(password + "x", expected)


def _random_cases(count):
    rnd = random.Random(20240613)
    alphabet = _crypt_hash.CRYPT_ALPHABET
    chars = "abcXYZ019 !$:;\\\"'\t\n" + "äöü€ñ漢字😀"
    for _i in range(count):
        yield ("".join(rnd.choice(chars) for _j in range(rnd.randint(0, 140))),
               "".join(rnd.choice(alphabet) for _j in range(rnd.randint(1, 16))),
               rnd.choice([None, 1000, 1001, 4999]))


@pytest.mark.skipif(crypt is None, reason="the crypt module is gone (Python >= 3.13)")
def test_builtin_sha512_crypt_matches_the_crypt_module():
    for password, salt, rounds in _random_cases(150):
        setting = "$6$%s%s" % ("rounds=%d$" % rounds if rounds else "", salt)
        assert sha512_crypt_builtin(password, salt, rounds) == crypt.crypt(password, setting), (password, salt, rounds)


@pytest.mark.skipif(passlib_sha512 is None, reason="passlib is not installed")
def test_builtin_sha512_crypt_matches_passlib():
    for password, salt, rounds in _random_cases(40):
        expected = passlib_sha512.using(salt=salt, rounds=rounds or 5000).hash(password)
        assert sha512_crypt_builtin(password, salt, rounds) == expected


@pytest.mark.parametrize("salt", ["", "bad$salt", "with space"])
def test_bad_salt(salt):
    with pytest.raises(InvalidInputError):
        sha512_crypt("x", salt)
