/** Resolves the repository a route addresses, and records its upstream for logs and metrics. */
import type { Repository } from '../../registry/repository.js';
import type { RouteContext } from '../route.js';

export function repositoryOf(ctx: RouteContext, name: string): Repository {
  const repo = ctx.deps.namespace.resolve(ctx.listener, ctx.target.ns, name);
  ctx.state.upstream = repo.name.upstream;
  // Hosted repositories are stored under `hosted`: the namespace the client asked for is echoed as it was.
  if (ctx.target.ns !== undefined) ctx.res.setHeader('oci-namespace', repo.kind === 'hosted' ? ctx.target.ns : repo.name.upstream);
  return repo;
}
