# A slim image of jifen-ledger, running as a non-root user.
# Set JIFEN_DATABASE_URL to a PostgreSQL database, or mount /app/var for SQLite.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 jifen

COPY pyproject.toml requirements.lock README.md ./
COPY ledger ./ledger
COPY api ./api
COPY redemption ./redemption
COPY audit ./audit
COPY web ./web
RUN pip install -c requirements.lock . \
    && mkdir -p /app/var && chown jifen:jifen /app/var

USER jifen
VOLUME ["/app/var"]
ENV JIFEN_BIND=0.0.0.0:8000
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "jifen db upgrade && exec jifen serve"]
