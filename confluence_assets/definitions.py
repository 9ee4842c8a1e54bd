"""The code location: its definitions loaded from the ``defs/`` folder (a ``dg`` project, see pyproject.toml).

Each module of ``confluence_assets/defs`` that makes Dagster objects contributes them: jobs at module
level; assets, sensors, schedules and resources from a ``@dg.definitions`` function that reads the
settings (``confluence_assets.settings.load()``) when the definitions load, never at import. workspace.yaml,
``dagster dev -m`` and ``dg dev`` all load this module.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg

PACKAGE_DIR = Path(__file__).resolve().parent


def load_definitions() -> dg.Definitions:
    """Every definition of the defs folder, merged."""
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file():  # a source checkout: the dg project's own config
        return dg.load_from_defs_folder(path_within_project=PACKAGE_DIR)
    # An installed wheel has no pyproject.toml: the same folder, named by its module.
    defs_module = importlib.import_module("confluence_assets.defs")
    return dg.ComponentTree.from_module(defs_module=defs_module, project_root=PACKAGE_DIR.parent).build_defs()


@dg.definitions
def defs() -> dg.Definitions:
    return load_definitions()
