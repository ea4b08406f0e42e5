/**
 * A local imitation of the Hugging Face Hub's HTTP API on 127.0.0.1 (never any other address), for
 * tests without internet: model info (`/api/models/ORG/NAME/revision/REV`, with `sha` and `siblings`),
 * the tree listing (paginated with a Link header), and `resolve` with the headers clients read (ETag,
 * X-Repo-Commit, X-Linked-Etag/Size; LFS files through a redirect to a "CDN" whose ETag is not the
 * sha256; ranges), 401/403/404 with the hub's X-Error-Code values, and faults that cut a transfer.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';

export interface HubFile {
  path: string;
  /** The bytes, or a file on disk to serve them from (large files). */
  data?: Buffer;
  file?: string;
  size: number;
  gitOid: string;
  /** Set for LFS files (weights): sha256 of the content. */
  sha256?: string;
}

export interface HubRepo {
  /** Branch and tag names → commit sha. */
  refs: Record<string, string>;
  commits: Record<string, HubFile[]>;
  /** Needs this token (401 without one, RepoNotFound: the hub hides private repos). */
  privateToken?: string;
  /** Gated: info and listing are public, files need `gatedToken` (401 / 403 GatedRepo). */
  gatedToken?: string;
}

export interface CutFault {
  /** File path in the repo. */
  path: string;
  /** Bytes of the body sent before the connection is destroyed. */
  afterBytes: number;
  /** How many transfers to cut (then it serves normally); Infinity for all. */
  times: number;
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  authorized: boolean;
}

export interface HubServer {
  endpoint: string;
  repos: Map<string, HubRepo>;
  log: LoggedRequest[];
  cuts: CutFault[];
  /** Transfers that stop sending after `afterBytes` and keep the connection open (a hung CDN). */
  stalls: { path: string; afterBytes: number }[];
  /** Bytes to flip in the content served for a path (a corrupted transfer). */
  corrupt: Set<string>;
  /** Items per page of the tree listing. */
  pageSize: number;
  close(): Promise<void>;
}

const LFS = /\.(safetensors|bin|pth|pt|gguf|onnx|model)$/;

export function gitBlobOid(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

/** A commit sha from its files (any 40 hex digits would do; this one is stable). */
export function commitOf(files: HubFile[], salt = ''): string {
  const h = createHash('sha1').update(salt);
  for (const f of files) h.update(`${f.path}\0${f.sha256 ?? f.gitOid}\0`);
  return h.digest('hex');
}

export function hubFile(filePath: string, data: Buffer): HubFile {
  return {
    path: filePath,
    data,
    size: data.length,
    gitOid: gitBlobOid(data),
    sha256: LFS.test(filePath) ? createHash('sha256').update(data).digest('hex') : undefined,
  };
}

/** A large file served from disk; its hashes computed once by streaming. */
export async function hubFileOnDisk(filePath: string, file: string): Promise<HubFile> {
  const sha = createHash('sha256');
  const size = fs.statSync(file).size;
  const git = createHash('sha1').update(`blob ${size}\0`);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 << 20 })) {
    sha.update(chunk as Buffer);
    git.update(chunk as Buffer);
  }
  return { path: filePath, file, size, gitOid: git.digest('hex'), sha256: LFS.test(filePath) ? sha.digest('hex') : undefined };
}

/** Every file under `dir` (recursively) as repo files, plus `extra` (unwanted formats, to check they are skipped). */
export function filesFromFolder(dir: string, extra: Record<string, string | Buffer> = {}): HubFile[] {
  const out: HubFile[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(hubFile(path.relative(dir, p).split(path.sep).join('/'), fs.readFileSync(p)));
    }
  };
  walk(dir);
  for (const [name, content] of Object.entries(extra)) out.push(hubFile(name, Buffer.from(content)));
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** A repo with one commit on `main` (and optional more refs to the same commit). */
export function repoOf(files: HubFile[], extraRefs: string[] = []): HubRepo {
  const commit = commitOf(files);
  const refs: Record<string, string> = { main: commit };
  for (const r of extraRefs) refs[r] = commit;
  return { refs, commits: { [commit]: files } };
}

/**
 * The environment of a run against `endpoint` with its own cache `home`: every HF_* and proxy variable set, so that the host's
 * never leak in (a proxy of the host must not take the requests to the imitation on 127.0.0.1); `extra` last.
 */
export function isolatedHubEnv(endpoint: string, home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HF_ENDPOINT: endpoint,
    HF_HOME: home,
    HF_HUB_CACHE: '',
    HF_TOKEN: '',
    HUGGING_FACE_HUB_TOKEN: '',
    HF_HUB_OFFLINE: '0',
    ...Object.fromEntries(['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'].map((v) => [v, ''])),
    ...extra,
  };
}

export async function startHubServer(repos: Record<string, HubRepo> = {}): Promise<HubServer> {
  const state = {
    repos: new Map(Object.entries(repos)),
    log: [] as LoggedRequest[],
    cuts: [] as CutFault[],
    stalls: [] as { path: string; afterBytes: number }[],
    corrupt: new Set<string>(),
    pageSize: 50,
  };
  const server = http.createServer((req, res) => {
    try {
      handle(state, req, res);
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    ...state,
    get pageSize() {
      return state.pageSize;
    },
    set pageSize(n: number) {
      state.pageSize = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What the request handler reads and writes: the server's fields less its address and `close`. */
type State = Omit<HubServer, 'endpoint' | 'close'>;

function fail(res: http.ServerResponse, status: number, code: string | null, message: string): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (code) headers['x-error-code'] = code;
  headers['x-error-message'] = message;
  res.writeHead(status, headers).end(JSON.stringify({ error: message }));
}

function handle(state: State, req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url!, 'http://127.0.0.1');
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  state.log.push({ method: req.method!, url: url.pathname + url.search, range: req.headers.range, authorized: token !== undefined });
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);

  if (parts[0] === 'cdn') return serveBytes(state, req, res, cdnFile(state, parts[1], parts[2]), { etag: `"cdn-${parts[1].slice(0, 8)}"` });

  const api = parts[0] === 'api' && parts[1] === 'models';
  const [org, name] = api ? parts.slice(2, 4) : parts.slice(0, 2);
  const repoId = `${org}/${name}`;
  const repo = state.repos.get(repoId);
  if (!repo || (repo.privateToken !== undefined && token !== repo.privateToken)) {
    // The hub answers 401 without a token and 404 with one, both RepoNotFound, for missing and private repos.
    return fail(res, token ? 404 : 401, 'RepoNotFound', 'Repository not found');
  }
  const kind = api ? parts[4] : parts[2];
  const revParts = api ? parts.slice(5) : parts.slice(3);
  const { commit, rest } = resolveRevision(repo, revParts);
  if (commit === undefined) return fail(res, 404, 'RevisionNotFound', 'Invalid rev id');
  const files = repo.commits[commit];

  if (api && kind === 'revision') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        _id: createHash('sha1').update(repoId).digest('hex').slice(0, 24),
        id: repoId,
        modelId: repoId,
        private: repo.privateToken !== undefined,
        gated: repo.gatedToken !== undefined ? 'manual' : false,
        disabled: false,
        downloads: 0,
        likes: 0,
        lastModified: '2026-01-01T00:00:00.000Z',
        tags: [],
        sha: commit,
        siblings: files.map((f) => ({ rfilename: f.path })),
      }),
    );
    return;
  }
  if (api && kind === 'tree') {
    const page = Number(url.searchParams.get('cursor') ?? '0');
    const slice = files.slice(page, page + state.pageSize);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (page + state.pageSize < files.length) {
      const next = new URL(url.toString());
      next.searchParams.set('cursor', String(page + state.pageSize));
      headers.link = `<${`http://${req.headers.host}${next.pathname}${next.search}`}>; rel="next"`;
    }
    res.writeHead(200, headers).end(
      JSON.stringify(
        slice.map((f) => ({
          type: 'file',
          oid: f.gitOid,
          size: f.sha256 ? 134 : f.size,
          path: f.path,
          ...(f.sha256 ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
        })),
      ),
    );
    return;
  }
  if (!api && kind === 'resolve') {
    const filePath = rest.join('/');
    const file = files.find((f) => f.path === filePath);
    if (!file) return fail(res, 404, 'EntryNotFound', `${filePath} does not exist on "${commit}"`);
    if (repo.gatedToken !== undefined && token !== repo.gatedToken) {
      return fail(res, token ? 403 : 401, 'GatedRepo', `Access to model ${repoId} is restricted.`);
    }
    const common = { 'x-repo-commit': commit, etag: `"${file.sha256 ?? file.gitOid}"` };
    if (file.sha256) {
      // LFS: a redirect to the storage, another host name as the hub's CDN is (`localhost`: still this server on 127.0.0.1), with the sha256 in X-Linked-Etag (the CDN's ETag is something else).
      res
        .writeHead(302, {
          ...common,
          'x-linked-etag': `"${file.sha256}"`,
          'x-linked-size': String(file.size),
          location: `http://localhost:${req.socket.localPort}/cdn/${file.sha256}/${encodeURIComponent(file.path)}`,
          'content-length': '0',
        })
        .end();
      return;
    }
    return serveBytes(state, req, res, file, common);
  }
  fail(res, 404, null, 'not found');
}

/** Branch/tag/sha from path parts; a branch may hold slashes (refs/pr/1), the longest known prefix wins. */
function resolveRevision(repo: HubRepo, parts: string[]): { commit?: string; rest: string[] } {
  for (let n = parts.length; n >= 1; n--) {
    const rev = parts.slice(0, n).join('/');
    const commit = repo.refs[rev] ?? (repo.commits[rev] ? rev : rev === 'HEAD' ? repo.refs.main : undefined);
    if (commit) return { commit, rest: parts.slice(n) };
  }
  return { rest: [] };
}

function cdnFile(state: State, sha256: string, filePath: string): HubFile | undefined {
  for (const repo of state.repos.values()) {
    for (const files of Object.values(repo.commits)) {
      const f = files.find((x) => x.sha256 === sha256 && x.path === filePath);
      if (f) return f;
    }
  }
  return undefined;
}

function serveBytes(state: State, req: http.IncomingMessage, res: http.ServerResponse, file: HubFile | undefined, headers: Record<string, string>): void {
  if (!file) return fail(res, 404, null, 'no such object');
  let start = 0;
  let end = file.size - 1;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m) {
    start = Number(m[1]);
    if (m[2]) end = Math.min(end, Number(m[2]));
    if (start >= file.size) {
      res.writeHead(416, { 'content-range': `bytes */${file.size}` }).end();
      return;
    }
  }
  const length = end - start + 1;
  res.writeHead(m ? 206 : 200, {
    ...headers,
    'accept-ranges': 'bytes',
    'content-length': String(length),
    'content-type': 'application/octet-stream',
    ...(m ? { 'content-range': `bytes ${start}-${end}/${file.size}` } : {}),
  });
  if (req.method === 'HEAD') return void res.end();
  const cut = state.cuts.find((c) => c.path === file.path && c.times > 0 && c.afterBytes >= start && c.afterBytes < start + length);
  if (cut) cut.times--;
  const stall = state.stalls.find((c) => c.path === file.path && c.afterBytes >= start && c.afterBytes < start + length);
  const stop = cut ? cut.afterBytes - start : stall ? stall.afterBytes - start : length;
  const corrupt = state.corrupt.has(file.path);
  const source: NodeJS.ReadableStream = file.data
    ? bufferStream(file.data.subarray(start, start + stop))
    : fs.createReadStream(file.file!, { start, end: start + stop - 1, highWaterMark: 1 << 20 });
  let first = true;
  source.on('data', (chunk: Buffer) => {
    if (corrupt && first) {
      chunk = Buffer.from(chunk);
      chunk[0] ^= 0xff;
    }
    first = false;
    if (!res.write(chunk)) {
      source.pause();
      res.once('drain', () => source.resume());
    }
  });
  // A cut: once the bytes before it have reached the kernel, the connection is dropped.
  source.on('end', () => {
    if (cut) res.write('', () => res.socket?.destroy());
    else if (!stall) res.end();
  });
}

function bufferStream(data: Buffer): NodeJS.ReadableStream {
  return Readable.from(data.length === 0 ? [] : [data]);
}
