# The gridalarm image for docker-compose.yml: the CLI with its Python dependencies.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gridalarm ./gridalarm
COPY producers ./producers
COPY stream ./stream
COPY models ./models
COPY evaluation ./evaluation
RUN pip install --no-cache-dir .
ENTRYPOINT ["gridalarm"]
