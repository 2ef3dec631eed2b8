/**
 * deploy/kubernetes: the ConfigMap's regcache.yaml is a valid config for three replicas on
 * S3 + PostgreSQL, every ${VAR} it uses comes from the Secret or the downward API, and the
 * Deployment runs three replicas exposing the ports the config listens on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';

const dir = join(import.meta.dirname, '..', '..', 'deploy', 'kubernetes');
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const docs = (f: string): Doc[] => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Doc);

describe('deploy/kubernetes', () => {
  const configText = docs('configmap.yaml')[0]!.data['regcache.yaml'] as string;
  const secretKeys = Object.keys(docs('secret.yaml')[0]!.stringData as object);
  const deployment = docs('deployment.yaml').find((d) => d.kind === 'Deployment')!;
  const container = deployment.spec.template.spec.containers[0];

  it('the ConfigMap is a valid config whose variables all come from the Secret or the pod', () => {
    const vars = [...configText.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!);
    const provided = [...secretKeys, ...container.env.map((e: { name: string }) => e.name)];
    expect(vars.filter((v) => !provided.includes(v))).toEqual([]);
    const env = Object.fromEntries(provided.map((k) => [k, k === 'POD_IP' ? '10.0.0.7' : 'x']));
    const cfg = parseConfigText(configText, env);
    expect(cfg.storage).toMatchObject({ blobs: 's3', metadata: 'postgres' });
    expect(cfg.replicas).toMatchObject({ listen: { port: 5001 }, advertise: 'http://10.0.0.7:5001' });
    expect(container.ports.map((p: { containerPort: number }) => p.containerPort).sort()).toEqual([cfg.listen.port, cfg.replicas!.listen.port].sort());
  });

  it('three replicas, with a Service on the registry port only', () => {
    expect(deployment.spec.replicas).toBe(3);
    const svc = docs('service.yaml')[0]!;
    expect(svc.spec.ports.map((p: { port: number }) => p.port)).toEqual([5000]);
    expect(container.envFrom[0].secretRef.name).toBe(docs('secret.yaml')[0]!.metadata.name);
  });
});
