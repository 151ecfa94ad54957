# syntax=docker/dockerfile:1.7
# nhigw images. Build targets:
#   runtime     `nhigw` on a slim Python: gateway, sim, agent (real PC/SC readers through the
#               host's pcscd socket), keygen. Only libpcsclite1 beyond Python. The default
#               (the last stage, `nhigw`, is this image).
#   agent-demo  runtime + pcscd + the vpcd driver: the demo agent with virtual cards
#               (deploy/docker/agent-demo.sh). Never for a clinic workstation.
# Both run as the unprivileged user nhigw (uid/gid 10001). See deploy/README.md.
#
#   docker build -t nhigw:0.1.0 .
#   docker build --target agent-demo -t nhigw-agent-demo:0.1.0 .

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------- builder: wheels
# pyscard has no Linux wheel on PyPI: it is compiled here (swig + the PC/SC headers), so
# the runtime image needs neither a compiler nor headers.
FROM ${PYTHON_IMAGE} AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev swig=4.1.0-0.2 libpcsclite-dev=1.9.9-2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="nhigw" \
      org.opencontainers.image.description="NHI card reader control software 6.0 as a clinic gateway: gateway, agent, simulator" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NHIGW_DATA_DIR=/var/lib/nhigw
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcsclite1=1.9.9-2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 nhigw \
 && useradd --system --uid 10001 --gid nhigw --home-dir /var/lib/nhigw --create-home --shell /usr/sbin/nologin nhigw \
 && install -d -o 10001 -g 10001 -m 0750 /run/nhigw-secrets /run/nhigw-secrets/gateway /run/nhigw-secrets/agent /run/nhigw-secrets/compat /run/nhigw-enrol \
 && install -d -o 10001 -g 10001 -m 0755 /run/nhigw-secrets/redis
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/nhigw-*.whl
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/nhigw-entrypoint
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/nhigw-healthcheck
COPY --chmod=0755 deploy/docker/init-secrets.sh /usr/local/bin/nhigw-init-secrets
COPY --chmod=0755 deploy/docker/enrol-token.sh /usr/local/bin/nhigw-enrol-token
USER 10001:10001
WORKDIR /var/lib/nhigw
EXPOSE 8066 8068 5067
# The default command is a gateway on the network: it needs Redis, the gateway key and HIS
# clients (NHIGW_REDIS_URL, NHIGW_BUS_KEY[_FILE], NHIGW_CLIENTS) and refuses to start without
# them. Compose and the manifests set each service's own command and probe URL (NHIGW_HEALTH_URL).
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 CMD ["nhigw-healthcheck"]
ENTRYPOINT ["nhigw-entrypoint"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8066"]

# ---------------------------------------------------------------- agent-demo
FROM runtime AS agent-demo
USER 0:0
RUN apt-get update \
 && apt-get install -y --no-install-recommends pcscd=1.9.9-2 vsmartcard-vpcd=3.3+dfsg-2 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 10001 -g 10001 -m 0755 /run/pcscd
COPY --chmod=0755 deploy/docker/agent-demo.sh /usr/local/bin/nhigw-agent-demo
USER 10001:10001
ENV NHIGW_HEALTH_URL=https://127.0.0.1:5066/healthz \
    NHIGW_RUN_DIR=/tmp/nhigw-demo
EXPOSE 5066
CMD ["nhigw-agent-demo", "--host", "0.0.0.0", "--port", "5066"]

# ---------------------------------------------------------------- default target
# The last stage is what a plain `docker build .` produces: the runtime image.
FROM runtime AS nhigw
