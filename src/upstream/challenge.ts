/**
 * Parses `WWW-Authenticate` challenges (RFC 7235 auth-params with quoted strings), e.g.
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"
 * Pure.
 */

export interface Challenge {
  scheme: string; // lowercased: 'bearer', 'basic'
  params: Record<string, string>;
}

export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const lines = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const line of lines) {
    let i = 0;
    let current: Challenge | undefined;
    const len = line.length;
    const skipWs = (): void => { while (i < len && (line[i] === ' ' || line[i] === '\t' || line[i] === ',')) i++; };
    while (i < len) {
      skipWs();
      const tokenMatch = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(line.slice(i));
      if (!tokenMatch) break;
      const token = tokenMatch[0];
      i += token.length;
      while (i < len && (line[i] === ' ' || line[i] === '\t')) i++;
      if (line[i] === '=') {
        // auth-param of the current challenge
        i++;
        while (i < len && (line[i] === ' ' || line[i] === '\t')) i++;
        let value = '';
        if (line[i] === '"') {
          i++;
          while (i < len && line[i] !== '"') {
            if (line[i] === '\\' && i + 1 < len) i++;
            value += line[i];
            i++;
          }
          i++;
        } else {
          const m = /^[^,\s]*/.exec(line.slice(i))!;
          value = m[0];
          i += value.length;
        }
        if (current) current.params[token.toLowerCase()] = value;
      } else {
        current = { scheme: token.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}
