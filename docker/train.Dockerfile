# A training run: wine_train writes a run folder under /app/runs (mount it to keep the result).
#   docker build -f docker/train.Dockerfile -t wine-nb-train .
#   docker run -v "$PWD/runs:/app/runs" -v "$PWD/../shared/data/wine-quality:/data:ro" -e WINE_NB_DATA_DIR=/data wine-nb-train --out_dir /app/runs/default
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg WANDB_MODE=offline
WORKDIR /app

# Every version comes from constraints.txt (the same pins as CI). PyTorch first, in its own layer: the PyTorch index's
# CPU build (2.13.0+cpu) outranks PyPI's 2.13.0, which would pull the CUDA libraries.
COPY constraints.txt ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt torch==2.13.0

COPY settings.ini setup.py README.md LICENSE ./
COPY wine_nb ./wine_nb
RUN pip install -c constraints.txt . && useradd --create-home --uid 10001 wine && mkdir -p /app/runs && chown wine /app/runs

USER 10001
ENTRYPOINT ["wine_train"]
CMD ["--out_dir", "/app/runs/default"]
