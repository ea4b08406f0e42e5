/**
 * A forward HTTP proxy on 127.0.0.1, as HTTP_PROXY clients use one: each request arrives with its absolute URL, which
 * the proxy logs and passes on. The hub tests check that downloads and metadata requests go through it.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ForwardProxy {
  /** `http://127.0.0.1:PORT`, for HTTP_PROXY. */
  url: string;
  /** The absolute URL of every request passed on. */
  log: string[];
  close(): Promise<void>;
}

export async function startForwardProxy(): Promise<ForwardProxy> {
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    log.push(req.url ?? '');
    const upstream = http.request(req.url ?? '', { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
