"""The dbt project as dagster-dbt sees it: where it is, its profile and target, its manifest.

The manifest (``dbt_project/target/manifest.json``) is built ahead of time, not at import:

    .venv/bin/dagster-dbt project prepare-and-package --file orchestration/defs/dbt/project.py

which ``make install`` (and so ``make test``, ``make demo``, ``make dagster``) runs, and runs
again when a file of the dbt project changes. Under ``dagster dev`` the project is prepared on
every load (``prepare_if_dev``), so edits to models show up on reload.

The manifest's relation names carry the target's database (DuckDB names its catalog after the
file's stem); nothing here reads them: ``mart_relation`` and the row counts use schema and
alias only, which depend on ``TOKENWATCH_DBT_SCHEMA`` (rebuild the manifest after changing it).
"""

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from ingestion.warehouse import DBT_TARGETS, target_name
from tokenwatch import config

DBT_DIR = config.project_root() / "dbt_project"
#: What builds the manifest when it is missing (the Makefile's install step runs it).
PREPARE_COMMAND = ".venv/bin/dagster-dbt project prepare-and-package --file " \
                  "orchestration/defs/dbt/project.py"

dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR,
                         target=DBT_TARGETS[target_name()])
# dagster-dbt's preparer runs `dbt` from PATH: make it this environment's, as when `dg` or
# `dagster dev` is started as .venv/bin/dg without the venv activated
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_BIN, os.environ.get("PATH", "")])
dbt_project.prepare_if_dev()
