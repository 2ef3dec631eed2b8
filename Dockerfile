# syntax=docker/dockerfile:1
# regcache container image. Build: docker build -t regcache .
# Run:   docker run -d -p 5000:5000 -v regcache-data:/data regcache
# The config is /etc/regcache/regcache.yaml (mount your own over it).

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

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    REGCACHE_CONFIG=/etc/regcache/regcache.yaml \
    REGCACHE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY config/regcache.yaml /etc/regcache/regcache.yaml
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:5000/healthz',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
