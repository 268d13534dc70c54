# syntax=docker/dockerfile:1
#
# One image for the three Huibao services. The command chooses the service:
#
#   docker run huibao huibao-reporting     (HTTP 8001)
#   docker run huibao huibao-rollup        (HTTP 8002)
#   docker run huibao huibao-scheduler     (HTTP 8003)
#
# Build from the workspace root:  docker build -t huibao:dev .
# Settings come only from environment variables: see docs/operations.md.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# build: resolve the locked dependencies into /app/.venv with uv
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# uv is installed from PyPI so that the build needs nothing but the Python index.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

WORKDIR /src

# 1) Third-party dependencies only, from the lock file and the workspace
#    manifests. This layer is rebuilt only when a pyproject.toml or uv.lock
#    changes, not when the code does. Keep this list equal to
#    [tool.uv.workspace].members in pyproject.toml (tests/deploy checks it).
COPY pyproject.toml uv.lock ./
COPY clients/python/pyproject.toml clients/python/pyproject.toml
COPY contracts/pyproject.toml contracts/pyproject.toml
COPY libs/platform/pyproject.toml libs/platform/pyproject.toml
COPY services/reporting/pyproject.toml services/reporting/pyproject.toml
COPY services/rollup/pyproject.toml services/rollup/pyproject.toml
COPY services/scheduler/pyproject.toml services/scheduler/pyproject.toml
COPY stack/pyproject.toml stack/pyproject.toml
COPY dashboard/pyproject.toml dashboard/pyproject.toml
RUN uv sync --frozen --no-dev --all-packages --no-install-workspace

# 2) The workspace packages themselves, installed as regular (non-editable)
#    wheels so that the runtime stage needs /app/.venv and nothing else.
COPY clients/ clients/
COPY contracts/ contracts/
COPY libs/ libs/
COPY services/ services/
COPY stack/ stack/
COPY dashboard/ dashboard/
RUN uv sync --frozen --no-dev --all-packages --no-editable \
 && /app/.venv/bin/python -c "import huibao_reporting, huibao_rollup, huibao_scheduler"

# ---------------------------------------------------------------------------
# runtime: the virtual environment, a non-root user, nothing else
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="huibao" \
      org.opencontainers.image.description="Huibao services: reporting, rollup, scheduler" \
      org.opencontainers.image.licenses="Proprietary"

# uid/gid 10001: outside the range of system users and of most host users.
RUN groupadd --system --gid 10001 huibao \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin huibao

# Owned by root and not writable by the service user: the code is read-only.
COPY --from=build /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:${PATH} \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUIBAO_HTTP_HOST=0.0.0.0 \
    HUIBAO_LOG_LEVEL=info \
    HUIBAO_LOG_FORMAT=json \
    HUIBAO_TIMEZONE=Asia/Shanghai

WORKDIR /app
USER 10001:10001

# reporting, rollup, scheduler (HUIBAO_HTTP_PORT); /metrics and /health/* share the port.
EXPOSE 8001 8002 8003

# Kubernetes and compose send SIGTERM; the services drain and exit on it.
STOPSIGNAL SIGTERM

# The default is reporting; compose and the Kubernetes manifests always name
# the service explicitly.
CMD ["huibao-reporting"]
