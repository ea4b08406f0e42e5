/**
 * A proxy in front of the hub imitation (test/helpers/hub-server.ts), on 127.0.0.1 only, for the hub
 * tests' faults that the imitation does not make: answers of its own for matching requests (an HTML
 * page, a 503, a body cut mid-way), edited headers (a Link to another host), a pause before a body.
 * Redirects to the imitation's "CDN" are rewritten to come back through the proxy.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyRule {
  /** Requests whose path and query match are handled by this rule. */
  match: RegExp;
  /** How many requests it handles (then it is skipped); Infinity when not given. */
  times?: number;
  /** An answer of its own instead of the imitation's. */
  respond?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Edits the imitation's response headers before they are sent on. */
  edit?: (headers: http.IncomingHttpHeaders) => void;
  /** Runs after the imitation answered and before anything is sent on (the client waits for the headers). */
  beforeBody?: () => void | Promise<void>;
}

export interface ProxyLog {
  host: string;
  url: string;
  authorized: boolean;
}

export interface HubProxy {
  endpoint: string;
  rules: ProxyRule[];
  log: ProxyLog[];
  close(): Promise<void>;
}

export async function startHubProxy(target: string): Promise<HubProxy> {
  const upstream = new URL(target);
  const rules: ProxyRule[] = [];
  const log: ProxyLog[] = [];
  let port = 0;
  const server = http.createServer((req, res) => {
    log.push({ host: req.headers.host ?? '', url: req.url!, authorized: req.headers.authorization !== undefined });
    const rule = rules.find((r) => r.match.test(req.url!) && (r.times ?? Infinity) > 0);
    if (rule && rule.times !== undefined) rule.times--;
    if (rule?.respond) return rule.respond(req, res);
    const forward = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, async (up) => {
      const headers = { ...up.headers };
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`:${upstream.port}/`, `:${port}/`);
      rule?.edit?.(headers);
      await rule?.beforeBody?.();
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    rules,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An answer with this status, content type and body. */
export function answer(status: number, body: string, type = 'application/json'): ProxyRule['respond'] {
  return (_req, res) => void res.writeHead(status, { 'content-type': type }).end(body);
}

/** An answer that promises `length` bytes, sends the first few and drops the connection. */
export function cutAnswer(length: number, start: string): ProxyRule['respond'] {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(length) });
    res.write(start, () => res.socket?.destroy());
  };
}
