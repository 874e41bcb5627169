# LLM-Tor proxy image (both roles; LLMTOR_ROLES picks one). Build from the repository root:
#   docker build -f helm/docker/proxy.Dockerfile -t llmtor-proxy:0.1.0 .
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json ./
COPY protocol/package.json protocol/
COPY scripts/package.json scripts/
COPY proxy/package.json proxy/
RUN npm ci --no-audit --no-fund --ignore-scripts -w protocol -w scripts -w proxy --include-workspace-root
COPY protocol protocol
COPY scripts scripts
COPY proxy proxy
RUN npx tsc -b proxy \
 && npm prune --omit=dev --no-audit --no-fund -w protocol -w proxy

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/package.json ./
COPY --from=build /src/protocol/package.json protocol/
COPY --from=build /src/protocol/dist/src protocol/dist/src
COPY --from=build /src/proxy/package.json proxy/
COPY --from=build /src/proxy/dist/src proxy/dist/src
USER node
EXPOSE 8080
ENTRYPOINT ["node", "proxy/dist/src/main.js"]
