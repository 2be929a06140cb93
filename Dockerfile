# Build stage: the full Python image has a C compiler, so the wheel gets the compiled conversion core
# (setup.py, mypyc); the runtime image stays slim and needs none.
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY streamer ./streamer
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
WORKDIR /app
COPY --from=build /wheels /wheels
# The study store lives in /var/lib/streamer/state (mount a volume there, see docker-compose.yml).
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels && useradd --uid 10001 streamer \
    && mkdir -p /var/lib/streamer/state && chown -R streamer /var/lib/streamer
# Fewer malloc arenas keep RocksDB's background threads from fragmenting resident memory.
ENV STREAMER_STATE_DIR=/var/lib/streamer/state MALLOC_ARENA_MAX=2
USER streamer
# /metrics, /healthz and /readyz (STREAMER_HTTP_PORT, default 8080), of the processor and of the sink.
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://localhost:%s/healthz' % os.environ.get('STREAMER_HTTP_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["python", "-m", "streamer"]
