# mlnb images, one Dockerfile, two targets (the last is the default):
#   docker build --target pipeline -t mlnb-pipeline .   runs the example pipeline headlessly (`mlnb build`)
#   docker build -t mlnb-serving .                     the scoring service (`mlnb serve`), see README "Serving"
# Dependencies come from pyproject.toml (`pip install .`), the single list environment.yml mirrors.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PLOOMBER_STATS_ENABLED=false \
    PLOOMBER_VERSION_CHECK_DISABLED=true \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    DO_NOT_TRACK=1 \
    DVC_NO_ANALYTICS=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 mlnb
WORKDIR /home/mlnb/project

COPY --chown=mlnb:mlnb pyproject.toml README.md ./
COPY --chown=mlnb:mlnb mlnb ./mlnb
RUN pip install --no-cache-dir . \
    && python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlnb)"

# --- the pipeline image -------------------------------------------------------------------------
FROM base AS pipeline
COPY --chown=mlnb:mlnb . .
# Dask too: this image is also a cluster worker's (`dask worker tcp://SCHEDULER:8786 --nthreads 1`);
# the extra's range is pyproject.toml's (DL3013 cannot see it there)
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[cluster]"
USER 10001
RUN python scripts/make_raw_data.py

ENTRYPOINT ["mlnb"]
# The image has no git checkout (see .dockerignore), so DVC cannot record outputs here: CI records
# and pushes them from its checkout (`mlnb build` then `mlnb push`).
CMD ["build", "--no-dvc"]

# --- the serving image (default target) ---------------------------------------------------------
# Bake the model in at build time:
#   docker build --build-arg MODEL_URI=models:/breast-cancer-classifier@champion \
#                --build-arg MLFLOW_TRACKING_URI=http://mlflow.internal:5000 -t mlnb-serving .
# (fetched and hash-checked by `mlnb fetch-model`), or pull it at start (and hot-swap on alias moves):
#   docker run -e MLNB_MODEL_URI=models:/breast-cancer-classifier@champion \
#              -e MLFLOW_TRACKING_URI=http://mlflow.internal:5000 -p 8080:8080 mlnb-serving
FROM base AS serve
ARG MODEL_URI=""
ARG MLFLOW_TRACKING_URI=""
USER 10001
WORKDIR /home/mlnb
RUN if [ -n "$MODEL_URI" ]; then mlnb fetch-model "$MODEL_URI" /home/mlnb/serving; fi

ENV MLNB_MODEL_URI=/home/mlnb/serving \
    MLNB_SERVE_HOST=0.0.0.0 \
    MLNB_SERVE_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "mlnb.serving.healthcheck"]
ENTRYPOINT ["mlnb", "serve"]
