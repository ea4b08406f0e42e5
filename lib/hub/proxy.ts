/**
 * The proxy a hub request goes through, from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` as curl and
 * Python's requests read them (proxy-from-env), for the metadata API and the downloads alike. Node's own fetch and
 * https read none of these variables; without them a machine behind a proxy cannot reach the hub at all.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { getProxyForUrl } from 'proxy-from-env';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';

/** One agent per proxy and scheme, so that connections to the proxy are kept and reused. */
const agents = new Map<string, http.Agent>();

/** The agent that takes a request to `url` through its proxy; undefined when none applies (NO_PROXY, or no variable set). */
export function proxyAgentFor(url: URL): http.Agent | undefined {
  const proxy = getProxyForUrl(url.href);
  if (proxy === '') return undefined;
  const key = `${url.protocol} ${proxy}`;
  let agent = agents.get(key);
  if (agent === undefined) {
    // http targets: the proxy takes the absolute URL; https targets: a CONNECT tunnel through it.
    agent = url.protocol === 'https:' ? new HttpsProxyAgent(proxy, { keepAlive: true }) : new HttpProxyAgent(proxy, { keepAlive: true });
    agents.set(key, agent);
  }
  return agent;
}

/**
 * A GET through the proxies that apply, with fetch's answer (status, headers, body as text), following redirects as
 * fetch does; the authorization header goes to the first origin only. For the metadata API, whose answers are small.
 */
export async function proxiedGet(url: URL, headers: Headers, signal: AbortSignal): Promise<Response> {
  for (let hop = 0, at = url; hop < MAX_REDIRECTS; hop++) {
    const sent: Record<string, string> = { 'accept-encoding': 'identity' };
    headers.forEach((value, name) => {
      if (name !== 'authorization' || at.origin === url.origin) sent[name] = value;
    });
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const client = at.protocol === 'https:' ? https : http;
      client.get(at, { headers: sent, signal, agent: proxyAgentFor(at) }, resolve).on('error', reject);
    });
    const status = res.statusCode!;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      at = new URL(res.headers.location, at);
      continue;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
    const answer = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined) answer.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const empty = status === 204 || status === 205 || status === 304;
    return new Response(empty ? null : Buffer.concat(chunks).toString('utf8'), { status, statusText: res.statusMessage, headers: answer });
  }
  throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url.href}`);
}

/** As fetch's limit. */
const MAX_REDIRECTS = 20;
