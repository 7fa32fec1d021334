"""Auto-import of a package's modules, so that their registration decorators run (timm-style)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable


def import_submodules(package: str, keep: Callable[[str], bool] = lambda name: True) -> None:
    """Import every module below `package` whose last name component passes `keep`."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if keep(info.name.rsplit(".", 1)[-1]):
            importlib.import_module(info.name)
