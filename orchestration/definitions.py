"""The one Dagster ``Definitions`` of tokenwatch: everything under ``orchestration/defs/`` (one
folder per concern: raw, dbt, gate, publication, tableau, charts, audit; ``schedules.py`` says
when jobs run), loaded with ``dg.load_from_defs_folder``, and the resources of
``TOKENWATCH_ENV`` (orchestration/resources.py).

    dagster dev -m orchestration.definitions      (or: make dagster, or: dg dev)
"""

from pathlib import Path

import dagster as dg

from orchestration.resources import resources

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    dg.Definitions(resources=resources()),
)
