# MarkITing Hub: one image for the GraphQL API, the outbox relay and the bus consumers (`hub serve`).
#   docker build -t markiting-hub .
#   docker run -p 8000:8000 markiting-hub            # embedded defaults: SQLite in /app/var, in-process bus
#   docker compose up                                 # with PostgreSQL and RabbitMQ (docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project as a regular package: `hub` and `hub_adapters` (the adapters/ folder, see
# pyproject.toml) land in site-packages. The README.md* glob copies the README when there is one.
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY hub/ hub/
COPY adapters/ adapters/
RUN pip install . && rm -rf /src

# The mappings are not Python packages: they ship as files, and HUB_MAPPINGS_DIR points at them
# (the installed package cannot find them next to itself). Mount your own over /app/mappings.
WORKDIR /app
COPY mappings/ /app/mappings/
RUN useradd --system --home-dir /app --shell /usr/sbin/nologin hub \
    && mkdir -p /app/var \
    && chown hub /app/var
ENV HUB_MAPPINGS_DIR=/app/mappings \
    HUB_DATABASE_URL=sqlite+aiosqlite:////app/var/hub.db
USER hub

EXPOSE 8000
# /healthz answers 200 unless an essential system is down (503: urlopen raises); a non-essential system
# that is down makes the answer "degraded", not unhealthy: the hub serves partial data without it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
