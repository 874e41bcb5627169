# Tor for the redemption pods' onion-service sidecar (Debian's tor package).
#   docker build -f helm/docker/tor.Dockerfile -t llmtor-tor:0.4.9 .
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends tor && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --home-dir /var/lib/tor/data --no-create-home tor-user
USER 1000
ENTRYPOINT ["tor"]
