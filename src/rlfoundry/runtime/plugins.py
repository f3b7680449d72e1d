"""User code named on the command line: ``module:function`` or ``path/to/file.py:function``.

Rewards, tools and other plug-ins are loaded by :func:`import_callable`, which turns every
way the name can be wrong into one sentence naming the cause and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from rlfoundry.errors import RLFoundryError


def import_callable(spec: str, what: str) -> Callable:
    """The function ``spec`` names (``module:function`` or ``file.py:function``); ``what``
    ("Reward", "Tool", ...) starts the error sentences."""
    module_name, fn_name = spec.rsplit(":", 1)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise RLFoundryError(f"{what} file '{path}' does not exist; check the path.")
            mod_id = f"_rlfoundry_{what.lower()}_{abs(hash(str(path.resolve())))}"
            found = importlib.util.spec_from_file_location(mod_id, path)
            module = importlib.util.module_from_spec(found)  # type: ignore[arg-type]
            sys.modules[mod_id] = module
            found.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except RLFoundryError:
        raise
    except Exception as err:
        raise RLFoundryError(
            f"Cannot import {what.lower()} module '{module_name}' ({type(err).__name__}: "
            f"{err}); make it importable (installed, or on PYTHONPATH) or give a .py file path."
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise RLFoundryError(
            f"{what} module '{module_name}' has no function '{fn_name}'; check the name after ':'."
        )
    return fn
