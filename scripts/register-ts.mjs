/**
 * Lets Node 20 run the TypeScript scripts in scripts/ (and the test helpers they import) directly:
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/main.ts
 *
 * Node 20 cannot strip types, so this registers module hooks (node:module register, Node >= 20.6) that
 * transpile every `.ts`/`.mts` file with the `typescript` devDependency's transpileModule (no type check:
 * `npm run typecheck` does that) and resolve the `./x.js` specifiers TypeScript sources use to `./x.ts`
 * when only the .ts file exists. No other dependency.
 *
 * This one file is both the `--import` entry (main thread: registers itself) and the hooks module
 * (loaded again by Node in its hooks thread, where `isMainThread` is false).
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  register(import.meta.url, import.meta.url);
}

let ts;
function typescript() {
  ts ??= createRequire(import.meta.url)('typescript');
  return ts;
}

const TS_EXT = /\.m?ts$/;

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    // `import './x.js'` from TypeScript source that has only x.ts (NodeNext style).
    const parent = context.parentURL;
    const pathLike = /^(?:\.{1,2}\/|\/|file:)/.test(specifier);
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && pathLike && /\.m?js$/.test(specifier)) {
      const url = new URL(specifier.replace(/js$/, 'ts'), parent ?? `file://${process.cwd()}/`);
      if (existsSync(fileURLToPath(url))) return { url: url.href, format: 'module', shortCircuit: true };
    }
    throw err;
  }
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !TS_EXT.test(new URL(url).pathname)) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  const t = typescript();
  const out = t.transpileModule(source, {
    fileName: file,
    compilerOptions: {
      module: t.ModuleKind.ESNext,
      target: t.ScriptTarget.ES2022,
      // Keep class fields as in tsc's NodeNext/ES2022 output the sources are written for.
      useDefineForClassFields: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  // package.json has "type": "module": every .ts file here is an ES module.
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
