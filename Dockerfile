# syntax=docker/dockerfile:1.7
# The sidepath worker image: a CUDA PyTorch base, sidepath in a venv on top,
# tini as PID 1, a numeric non-root user, every cache under /tmp so that the root
# filesystem can be read-only. Probes are the chart's job: no HEALTHCHECK.
#
#   docker build -t sidepath:0.1.0 .
#   # with a model merged from split parts (checksums verified):
#   sidepath model split age.pt --out-dir dist/model     # age.pt.part-0001... + manifest
#   docker build --target with-model --build-context model-parts=dist/model \
#     --build-arg MODEL_MANIFEST=age.pt.manifest.json -t sidepath:0.1.0-age .
#
# docs/operations.md ("Image") explains each choice.

# Pinned: torch, CUDA and cuDNN come from this image; its Python must be 3.11+
# (checked in the build stage). Pin the digest too once the registry is mirrored.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# Stages are ordered by how often they change, so that a code change rebuilds only
# the last small layers: deps (requirements.lock) -> model (model parts) -> code.

# ---- deps: the pinned dependencies in /opt/venv (rebuilt when requirements.lock changes)
FROM ${BASE_IMAGE} AS deps
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# --system-site-packages: torch stays the base image's build (CUDA-matched);
# pip sees it installed and adds only what is missing.
RUN python -c 'import sys; sys.exit("sidepath needs Python 3.11+, the base image has " + sys.version) if sys.version_info < (3, 11) else None' \
 && python -m venv --system-site-packages /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --require-virtualenv -r /tmp/requirements.lock

# ---- build: sidepath as a wheel (the code layer; no dependency is resolved here)
FROM deps AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY core/ core/
COPY worker/ worker/
COPY decoders/ decoders/
COPY models/ models/
COPY sinks/ sinks/
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/sidepath --version

# ---- model-parts: empty placeholder, replaced by --build-context model-parts=DIR
FROM scratch AS model-parts

# ---- model: merge split model parts and verify their checksums --------------
# Needs only the merge code (models/parts.py and the errors it raises), not the
# source tree, so a code change elsewhere never redoes the merge.
FROM ${BASE_IMAGE} AS model
# The manifest written by `sidepath model split FILE` (FILE.manifest.json), parts beside it.
ARG MODEL_MANIFEST=model.pt.manifest.json
COPY models/parts.py /tools/sidepath/models/parts.py
COPY core/errors.py /tools/sidepath/worker/errors.py
COPY --from=model-parts / /parts/
RUN touch /tools/sidepath/__init__.py /tools/sidepath/models/__init__.py /tools/sidepath/worker/__init__.py \
 && mkdir -p /models \
 && PYTHONPATH=/tools python -c 'import sys; from sidepath.models.parts import merge_parts; print(merge_parts(sys.argv[1], "/models"))' "/parts/${MODEL_MANIFEST}"

# ---- base: what every runtime image holds, without sidepath's own code --------
FROM ${BASE_IMAGE} AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# tini reaps children and forwards SIGTERM, so the worker drains and commits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=0.19.0-1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 sidepath \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin sidepath \
 && mkdir -p /etc/sidepath /opt/sidepath/models /var/lib/sidepath \
 && chown 10001:10001 /var/lib/sidepath
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    TZ=UTC \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/torch \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    TRITON_CACHE_DIR=/tmp/triton \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIDEPATH_LOG_FORMAT=json \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
LABEL org.opencontainers.image.title="sidepath" \
      org.opencontainers.image.description="Batched, crash-safe offline inference over a Kafka stream" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /var/lib/sidepath
EXPOSE 9108
ENTRYPOINT ["/usr/bin/tini", "--", "sidepath"]
CMD ["run", "--config", "/etc/sidepath/sidepath.toml"]

# ---- with-model: base, the merged model, then the code (last: it changes most)
FROM base AS with-model
COPY --from=model /models/ /opt/sidepath/models/
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    /opt/venv/bin/pip install --no-deps --no-index /wheels/*.whl
USER 10001:10001

# ---- runtime (default target): models are mounted or fetched at start -------
FROM base AS runtime
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    /opt/venv/bin/pip install --no-deps --no-index /wheels/*.whl
USER 10001:10001
