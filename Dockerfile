FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
# The study store lives in /var/lib/streamer/state (mount a volume there, see docker-compose.yml).
RUN pip install --no-cache-dir . && useradd --uid 10001 streamer \
    && mkdir -p /var/lib/streamer/state && chown -R streamer /var/lib/streamer
# Fewer malloc arenas keep RocksDB's background threads from fragmenting resident memory.
ENV STREAMER_STATE_DIR=/var/lib/streamer/state MALLOC_ARENA_MAX=2
USER streamer
ENTRYPOINT ["python", "-m", "streamer"]
