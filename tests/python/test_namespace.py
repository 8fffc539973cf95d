# SPDX-License-Identifier: MIT
"""The namespaces of the package and of each submodule: the public names dir() shows are exactly
__all__, and nothing imported for the implementation (typing's Union, Optional, Any,
collections.abc's MutableMapping, Iterator, the `annotations` future flag, json, sys, numpy)
leaks into them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Names that once leaked from `from typing import ...`, `from collections.abc import ...` and
#: `from __future__ import annotations`.
LEAKED = {"Union", "MutableMapping", "Iterator", "Optional", "Any", "annotations"}


def public_names(module: str) -> dict:
    """dir()'s public names and __all__ of `module`, imported alone in a fresh interpreter (so
    submodules other tests imported, e.g. shmlink.dao, do not show up)."""
    code = (f"import json, importlib; m = importlib.import_module({module!r}); "
            "print(json.dumps({'dir': sorted(n for n in dir(m) if not n.startswith('_')), "
            "'all': list(getattr(m, '__all__', None) or [])}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


#: The package and every submodule a user imports by name.
MODULES = ["shmlink", "shmlink.errors", "shmlink.dao", "shmlink.plot", "shmlink.bridge"]


def test_every_submodule_is_checked():
    """A new submodule of the package must be added to MODULES (found from the package's files)."""
    import pathlib

    import shmlink
    files = pathlib.Path(shmlink.__file__).parent.glob("*.py")
    found = {f"shmlink.{f.stem}" for f in files if not f.stem.startswith("_")}
    assert found <= set(MODULES), f"submodules not checked by this test: {sorted(found - set(MODULES))}"


@pytest.mark.parametrize("module", MODULES)
def test_public_names_are_exactly_all(module):
    names = public_names(module)
    assert names["all"], f"{module} defines no __all__"
    assert len(names["all"]) == len(set(names["all"])), f"{module}.__all__ lists a name twice"
    assert set(names["dir"]) == set(names["all"]), (
        f"{module}: public but not in __all__: {sorted(set(names['dir']) - set(names['all']))}; "
        f"in __all__ but missing: {sorted(set(names['all']) - set(names['dir']))}")
    assert not LEAKED & set(names["dir"]), f"{module} leaks {sorted(LEAKED & set(names['dir']))}"
