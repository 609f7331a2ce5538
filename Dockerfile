# affix in a container: docker build -t affix . && docker run -p 8000:8000 -v affix-data:/var/lib/affix affix
FROM python:3.11-slim

# python-magic needs the system's libmagic; Debian's security updates are what the version
# tracks, so it is not pinned
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*

# affix runs as a user of its own, uid 10001, never as root
RUN useradd --system --uid 10001 --home-dir /var/lib/affix --shell /usr/sbin/nologin affix \
    && mkdir -p /var/lib/affix \
    && chown affix:affix /var/lib/affix

WORKDIR /opt/affix
COPY . .
# S3 storage and PostgreSQL need their drivers too: pip install '.[s3,postgres]'
RUN pip install --no-cache-dir .

USER 10001:10001
ENV AFFIX_DATA_DIR=/var/lib/affix \
    PYTHONUNBUFFERED=1
# the database, the blobs and the metrics' files: everything affix keeps
VOLUME ["/var/lib/affix"]
WORKDIR /var/lib/affix
EXPOSE 8000

# /health asks nothing of the database or the store: a slow database never gets a serving
# container restarted (readiness, /health/ready, is for the load balancer)
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]

CMD ["affix", "serve", "--bind", "0.0.0.0:8000"]
