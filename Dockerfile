# mlnb image: runs the example pipeline headlessly (`mlnb build`), as CI does.
# Dependencies come from pyproject.toml (`pip install .`), the single list environment.yml mirrors.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PLOOMBER_STATS_ENABLED=false \
    PLOOMBER_VERSION_CHECK_DISABLED=true \
    MLFLOW_DISABLE_TELEMETRY=true \
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

COPY --chown=mlnb:mlnb . .
USER 10001
RUN python scripts/make_raw_data.py

ENTRYPOINT ["mlnb"]
# The image has no git checkout (see .dockerignore), so DVC cannot record outputs here: CI records
# and pushes them from its checkout (`mlnb build` then `mlnb push`).
CMD ["build", "--no-dvc"]
