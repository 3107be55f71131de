# The prediction service: wine_serve on port 8000, serving the run folder mounted or copied at /app/runs/default,
# logging every prediction to /var/lib/wine_nb/predictions.sqlite (mount a volume there to keep the log).
#   docker build -f docker/serve.Dockerfile -t wine-nb-serve .
#   docker run -p 8000:8000 -v "$PWD/runs/default:/app/runs/default:ro" -v wine-nb-log:/var/lib/wine_nb wine-nb-serve
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WINE_NB_PREDICTION_LOG=/var/lib/wine_nb/predictions.sqlite
WORKDIR /app

# Every version comes from constraints.txt (the same pins as CI). PyTorch first, in its own layer: the PyTorch index's
# CPU build (2.13.0+cpu) outranks PyPI's 2.13.0, which would pull the CUDA libraries.
COPY constraints.txt ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt torch==2.13.0

COPY settings.ini setup.py README.md LICENSE ./
COPY wine_nb ./wine_nb
RUN pip install -c constraints.txt . && useradd --create-home --uid 10001 wine && mkdir -p /app/runs /var/lib/wine_nb && chown wine /app/runs /var/lib/wine_nb
VOLUME /var/lib/wine_nb

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status != 200)"]
CMD ["wine_serve", "--model", "/app/runs/default", "--host", "0.0.0.0", "--port", "8000"]
