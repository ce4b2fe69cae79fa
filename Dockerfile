# dspark on the CPU: an OpenAI-compatible server with speculative decoding.
#
#   docker build -t dspark .
#   docker run -p 8000:8000 -v "$PWD/models:/models" dspark            # the default model
#   docker run -p 8000:8000 -v "$PWD/models:/models" -e DSPARK_API_KEY=sk-... dspark \
#       --config configs/production.yaml
#
# Every `dspark serve` option is a DSPARK_<OPTION> variable too (DSPARK_SPEC_METHOD=ngram), and
# the example configs are in configs/ of the working directory (/opt/dspark), whose models/ is
# the /models volume. Fetch models on the host with scripts/fetch_models.py.
# BASE_IMAGE: a Debian 12 image; scripts/check_image.sh builds one locally with debootstrap where
# no registry is reachable.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config libboost-dev nlohmann-json3-dev libspdlog-dev \
      libfmt-dev libpcre2-dev libyaml-cpp-dev curl ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# xgrammar's pinned source (the grammar engine; CMake compiles its C++ core) from PyPI.
COPY scripts/fetch_xgrammar.sh scripts/
RUN bash scripts/fetch_xgrammar.sh
COPY CMakeLists.txt ./
COPY cmake cmake
COPY include include
COPY src src
COPY kernels kernels
# Kernels are picked at run time (AVX-512 VNNI, AVX2 or scalar), so the image runs on any x86-64.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSPARK_TESTS=OFF -DDSPARK_CUDA=OFF \
 && cmake --build build --target dspark \
 && strip build/dspark

FROM ${BASE_IMAGE}
# Runtime libraries only.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libspdlog1.10 libfmt9 libpcre2-8-0 libyaml-cpp0.7 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin dspark \
 && mkdir -p /models /opt/dspark \
 && ln -s /models /opt/dspark/models
COPY --from=build /src/build/dspark /usr/local/bin/dspark
COPY configs /opt/dspark/configs
WORKDIR /opt/dspark
ENV DSPARK_HOST=0.0.0.0 \
    DSPARK_PORT=8000 \
    DSPARK_MODEL=/models/SmolLM2-135M-Instruct.Q4_1.gguf
USER dspark
VOLUME ["/models"]
EXPOSE 8000
# /health answers 503 while the model loads and 200 once it serves (open unless
# auth-all-endpoints); bash's /dev/tcp keeps curl out of the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${DSPARK_PORT:-8000} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# dspark drains requests in flight on SIGTERM for --shutdown-timeout seconds (default 30): give
# the container at least that long to stop (docker stop -t, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dspark", "serve"]
