# MarkITing Hub: one image for the GraphQL API, the outbox relay and the bus consumers (`hub serve`).
#   docker build -t markiting-hub .
#   docker run -p 8000:8000 markiting-hub            # embedded defaults: SQLite in /app/var, in-process bus
#   docker compose up                                 # with PostgreSQL and RabbitMQ (docker-compose.yml)

# --- build: the wheel, as `pip wheel` makes it for any user ------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The README.md* glob copies the README when there is one (the package's long description).
COPY pyproject.toml README.md* ./
COPY hub/ hub/
COPY adapters/ adapters/
COPY mappings/ mappings/
RUN pip wheel --no-deps --wheel-dir /dist .

# --- the image: the wheel installed as a regular package, nothing of the source tree -----------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# `hub`, `hub_adapters` (adapters/) and `hub_mappings` (the shipped mappings/, with the demo data and
# CM's catalog) land in site-packages; the hub finds its mappings there (hub.config.shipped), so
# HUB_MAPPINGS_DIR is only set to use your own (mount them, see docker-compose.yml).
COPY --from=build /dist/ /tmp/dist/
RUN pip install /tmp/dist/*.whl && rm -rf /tmp/dist

WORKDIR /app
RUN useradd --system --home-dir /app --shell /usr/sbin/nologin hub \
    && mkdir -p /app/var \
    && chown hub /app/var
ENV HUB_DATABASE_URL=sqlite+aiosqlite:////app/var/hub.db
USER hub

# 8000: GraphQL, /healthz, /ops (the operations page) and /metrics (behind an operator credential);
# 9100: Prometheus metrics on a listener of their own, when HUB_METRICS_PORT=9100 (docker-compose.yml).
EXPOSE 8000 9100
# /healthz answers 200 unless an essential system is down (503: urlopen raises); a non-essential system
# that is down makes the answer "degraded", not unhealthy: the hub serves partial data without it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
