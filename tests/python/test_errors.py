# SPDX-License-Identifier: MIT
"""The package stands on the public API. The error codes of shmlink.errors are the C API's: every
SHMLINK_E_* code of include/shmlink.h has its exception class in Python, and Python knows no code
that C does not (the table in errors.py is written by hand, so this test pins it both ways); the
core loads libshmlink rather than a static copy of the library's internals."""

from __future__ import annotations

import pathlib
import re

import pytest

import shmlink
from shmlink import errors

INCLUDE = pathlib.Path(__file__).resolve().parents[2] / "include"
# shmlink.h and its parts (include/shmlink/c/*.h), which hold the declarations.
HEADERS = [INCLUDE / "shmlink.h", *sorted((INCLUDE / "shmlink" / "c").glob("*.h"))]


def c_codes() -> dict[str, int]:
    """SHMLINK_E_<NAME> -> code, as include/shmlink.h (through its parts) defines them."""
    text = "\n".join(h.read_text() for h in HEADERS)
    codes = {m[1]: int(m[2]) for m in re.finditer(r"^#define SHMLINK_E_(\w+) \((-\d+)\)", text, re.M)}
    assert len(codes) >= 20, f"{[str(h) for h in HEADERS]}: found only {codes}"
    return codes


def test_python_error_codes_are_exactly_the_c_ones():
    c = c_codes()
    py = errors.codes()
    missing = {name: code for name, code in c.items() if code not in py}
    extra = sorted(set(py) - set(c.values()))
    assert not missing, f"C codes without a Python class in shmlink/errors.py: {missing}"
    assert not extra, f"Python codes that include/shmlink.h does not define: {extra}"


@pytest.mark.parametrize("name,code", sorted(c_codes().items(), key=lambda kv: -kv[1]))
def test_from_code_gives_the_class_of_the_table_with_the_code(name, code):
    exc = errors.from_code(code, f"SHMLINK_E_{name}")
    assert isinstance(exc, shmlink.Error)
    assert type(exc) is errors.codes()[code]
    assert exc.code == code
    assert str(exc) == f"SHMLINK_E_{name}"


def test_builtin_bases_of_the_common_codes():
    c = c_codes()
    assert isinstance(errors.from_code(c["NOT_FOUND"], "x"), FileNotFoundError)
    assert isinstance(errors.from_code(c["EXISTS"], "x"), FileExistsError)
    assert isinstance(errors.from_code(c["PERMISSION"], "x"), PermissionError)
    assert isinstance(errors.from_code(c["TIMEOUT"], "x"), TimeoutError)
    assert isinstance(errors.from_code(c["LAYOUT"], "x"), ValueError)


def test_an_unknown_code_is_a_plain_error():
    exc = errors.from_code(-9999, "what")
    assert type(exc) is shmlink.Error and exc.code == -9999


def test_the_core_uses_the_public_library():
    """shmlink._shmlink is linked to libshmlink (the public API, hidden visibility: it can only call
    what the library exports), not to a static copy of the library's internals."""
    import shmlink._shmlink as core

    maps = pathlib.Path("/proc/self/maps").read_text()
    libs = {line.split()[-1] for line in maps.splitlines() if "libshmlink.so" in line}
    assert libs, f"{core.__file__} does not load libshmlink.so"
