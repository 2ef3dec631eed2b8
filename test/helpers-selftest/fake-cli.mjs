// Stand-in for dist/cli.js used by the helpers' self-test: `serve --config FILE` with the same process contract.
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { parse } from 'yaml';

const [cmd, flag, file] = process.argv.slice(2);
if (cmd !== 'serve' || flag !== '--config' || !file) {
  process.stderr.write('usage: fake-cli serve --config FILE\n');
  process.exit(2);
}
const cfg = parse(readFileSync(file, 'utf8'));
if (cfg.failStart) {
  process.stderr.write('fake-cli: refusing to start (failStart)\n');
  process.exit(3);
}
const [host, port] = String(cfg.listen).split(':');
const log = (o) => process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), ...o }) + '\n');
appendFileSync(join(cfg.dataDir, 'starts'), 'x');
const server = createServer((req, res) => {
  log({ msg: 'request', method: req.method, url: req.url });
  res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="fake"' });
  res.end('{"errors":[]}');
});
server.listen(Number(port), host, () => {
  process.stdout.write('not json\n');
  log({ msg: 'listening', port: Number(port), starts: readFileSync(join(cfg.dataDir, 'starts'), 'utf8').length });
});
process.on('SIGTERM', () => {
  log({ msg: 'shutting down' });
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
