# The two commands a new user types: `make demo` and `make test`.
# Both create .venv from nothing when it is missing and install against requirements.lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# dbt's manifest, which the Dagster definitions are built from: made at install, and again
# whenever a file of the dbt project changes (`dagster dev` also re-parses on every load).
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/seeds \
	dbt_project/snapshots dbt_project/tests -type f 2>/dev/null) \
	dbt_project/dbt_project.yml dbt_project/profiles.yml orchestration/defs/dbt/project.py
PREPARE_DBT := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dagster-dbt project prepare-and-package \
	--file orchestration/defs/dbt/project.py

.PHONY: install test demo dagster dagster-home print-dagster-home docs lint bench lock clean
# Dagster's instance lives under .tokenwatch/ (git-ignored; $TOKENWATCH_HOME when set): its
# dagster.yaml is copied there from the template orchestration/dagster.yaml, and every file the
# instance writes stays there. The code location is `tokenwatch` (workspace.yaml).
DAGSTER_HOME := $(or $(TOKENWATCH_HOME),$(CURDIR)/.tokenwatch)/dagster
demo dagster dagster-home: export DAGSTER_HOME := $(DAGSTER_HOME)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	$(PREPARE_DBT)
	@touch $(STAMP) $(MANIFEST)

$(MANIFEST): $(DBT_SOURCES) | $(STAMP)
	$(PREPARE_DBT)
	@touch $(MANIFEST)

install: $(STAMP) $(MANIFEST)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install dagster-home
	$(BIN)/tokenwatch demo

# The Dagster UI on the same instance the demo ran on (the local stack must be up). Schedules
# and sensors start stopped locally: turn them on in the UI (Automation) or with
# `dagster schedule start` / `dagster sensor start` (README, "Dagster").
dagster: install dagster-home
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dagster dev -w workspace.yaml

# The Dagster instance's home: created, its dagster.yaml refreshed from the template.
dagster-home:
	@mkdir -p $(DAGSTER_HOME)
	@cp orchestration/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Where it is (e.g. `export DAGSTER_HOME=$$(make -s print-dagster-home)` for the dagster CLI).
print-dagster-home: dagster-home
	@echo $(DAGSTER_HOME)

# dbt's documentation site: lineage, every model and column described.
docs: install
	cd dbt_project && ../$(BIN)/dbt docs generate --profiles-dir . && \
		../$(BIN)/dbt docs serve --profiles-dir . --port 8081

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/state_service.py

# Re-resolve the lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-annotate --no-header \
		-o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
