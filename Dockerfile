# One image for every activetrace process: control plane, data plane node, demo upstream.
FROM python:3.11-slim AS build
# A C compiler for the C extensions (dataplane/tracing/_wire.c, dataplane/_http1.c,
# controlplane/otlp/_rows.c; built by hatch_build.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY controlplane controlplane
COPY dataplane dataplane
COPY protos protos
COPY migrations migrations
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GRPC_VERBOSITY=ERROR
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin activetrace
USER activetrace
WORKDIR /home/activetrace
# Overridden per service in docker-compose.yml (a node checks its /status instead).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["activetrace", "healthcheck"]
ENTRYPOINT ["activetrace"]
CMD ["--help"]
