# syntax=docker/dockerfile:1
# regcache container image. Build: docker build -t regcache .
# Run:   docker run -d -p 5000:5000 -v regcache-data:/data regcache
# The config is /etc/regcache/regcache.yaml: mount your own config DIRECTORY over
# /etc/regcache (a single-file mount never sees edits made by rename; see README).

FROM node:22-bookworm-slim AS build
WORKDIR /src
# Toolchain for better-sqlite3's native addon (compiled from source).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci
# Drop dev dependencies; the compiled addon and dist/ stay.
RUN npm prune --omit=dev
# Keep only the addon better-sqlite3 loads (build/Release/better_sqlite3.node): its SQLite
# sources, object files and static library are ~26 MB of build leftovers. Then prove the
# trimmed module still opens a database.
RUN cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/better_sqlite3.node \
 && rm -rf build deps src binding.gyp \
 && mkdir -p build/Release \
 && mv /tmp/better_sqlite3.node build/Release/better_sqlite3.node \
 && cd /src \
 && node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"

FROM node:22-bookworm-slim
# --max-semi-space-size=2: see docs/limits.md, "Memory" (~30 MB less peak RSS, no CPU cost measured).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=2 \
    REGCACHE_CONFIG=/etc/regcache/regcache.yaml \
    REGCACHE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY config/regcache.yaml /etc/regcache/regcache.yaml
# The image runs as node (uid 1000, gid 1000): a data volume must be writable by it
# (serve refuses to start otherwise, naming the chown to run).
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 5000
# Probes the configured listener (REGCACHE_LISTEN or the config's listen), not a fixed port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/cli.js", "healthcheck", "--timeout", "3s"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
