# syntax=docker/dockerfile:1
# One image, three roles; the command picks one (deploy/helm/ runs each):
#
#   the Dagster code location   dagster code-server start -h 0.0.0.0 -p 4000 -m orchestration.definitions   (the CMD)
#   the state service           tokenwatch serve --host 0.0.0.0 --port 8080 --workers 2
#   the reports API             tokenwatch reports serve --host 0.0.0.0 --port 8090
#
# Nothing secret is built in: keys, passwords and DSNs come from the environment at run time
# (a Kubernetes Secret, deploy/helm/). Build:
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t tokenwatch:$(git rev-parse --short HEAD) .
# tests/deploy/test_image.py checks this file without building it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
# The pinned dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock
# Then tokenwatch itself against the same lock, as `make install` does but not editable: the
# packages land in the venv, so the runtime stage needs no source tree.
COPY . .
RUN pip install -c requirements.lock .
# dbt's manifest, which the Dagster definitions are built from, for the production target
# (TOKENWATCH_ENV=prod: Snowflake) and shipped in the image: nothing parses dbt at start-up.
# The installed tokenwatch finds the dbt project in the current directory (tokenwatch/config.py,
# project_root), which is /app here and at run time.
RUN TOKENWATCH_ENV=prod dagster-dbt project prepare-and-package --file orchestration/defs/dbt/project.py

FROM ${PYTHON_IMAGE} AS runtime
# The commit built (docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) .): the audit
# packs record it, as a checkout's `git rev-parse HEAD` would (the image has no .git).
ARG GIT_COMMIT=""
# WeasyPrint's system libraries (the audit pack's PDF) and a font to set it in.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid and gid, never root: deploy/helm/ runs the pods as the same 10001 (runAsNonRoot).
RUN groupadd --system --gid 10001 tokenwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/tokenwatch --create-home \
      --shell /usr/sbin/nologin tokenwatch \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/tokenwatch
COPY --from=builder /opt/venv /opt/venv
# The dbt project with its manifest; the pipeline's dbt writes its artefacts under target/ and
# logs/ (the only place in the image the app user may write, besides TOKENWATCH_HOME).
COPY --from=builder --chown=10001:10001 /app/dbt_project /app/dbt_project
COPY deploy/docker/healthcheck.py /opt/tokenwatch/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOKENWATCH_ENV=prod \
    TOKENWATCH_HOME=/var/lib/tokenwatch \
    TOKENWATCH_GIT_COMMIT=${GIT_COMMIT}
WORKDIR /app
USER 10001:10001
EXPOSE 4000 8080 8090
# Checks whichever role this container runs (PID 1's command): /healthz of the two HTTP
# services, `dagster api grpc-health-check` of the code location. Kubernetes ignores it and
# probes the same endpoints itself (deploy/helm/).
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
  CMD ["python", "/opt/tokenwatch/healthcheck.py"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "orchestration.definitions"]
