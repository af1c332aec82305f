# lts dashboard image: `docker build -t lts . && docker run -p 8501:8501 -v lts-results:/app/results \
#   -v "$PWD/secrets.toml:/app/.streamlit/secrets.toml:ro" lts` (sign-in: see the README's team set-up;
# without a secrets file the server refuses to start unless run with -e LTS_ALLOW_UNAUTHENTICATED=1).
# `--build-arg TEAM_EXTRAS=1` adds the optional extras (Authlib for OIDC sign-in, Ray for remote devices).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LTS_DB=/app/results/lts.db

WORKDIR /app

# torch from the CPU index: PyPI's Linux wheel of the same version is the multi-GB CUDA build.
ARG TEAM_EXTRAS=0
COPY requirements.txt requirements-team.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -r requirements.txt \
    && if [ "$TEAM_EXTRAS" = "1" ]; then pip install -r requirements-team.txt; fi

COPY pyproject.toml README.md ./
COPY lts ./lts
COPY dashboard ./dashboard
# Only the config: a secrets file is mounted at run time, never baked into the image.
COPY .streamlit/config.toml ./.streamlit/config.toml
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 lts \
    && mkdir -p /app/results \
    && chown -R lts:lts /app/results

USER 1000
VOLUME ["/app/results"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]

# Inside the container the app must listen on all interfaces to be reachable through -p; lts serve
# refuses that without sign-in configured (or LTS_ALLOW_UNAUTHENTICATED=1).
CMD ["lts", "serve", "--server.address=0.0.0.0", "--server.port=8501"]
