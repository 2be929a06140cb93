FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
RUN pip install --no-cache-dir . && useradd --uid 10001 streamer
USER streamer
ENTRYPOINT ["python", "-m", "streamer"]
