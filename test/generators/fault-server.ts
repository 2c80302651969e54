// A real HTTP server on 127.0.0.1 that misbehaves on purpose, for the HTTP backend's tests.
// The scenario is the first path segment: http://127.0.0.1:PORT/<scenario>/v1/chat/completions.
// Every request is recorded (scenario, arrival time, body) so tests assert what reached the wire.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Hit {
  scenario: string;
  path: string;
  at: number;
  body: Record<string, unknown>;
  auth?: string;
}

export interface FaultServer {
  url: string;
  hits: Hit[];
  count(scenario: string): number;
  close(): Promise<void>;
}

/** A valid OpenAI reply; the text echoes the last message so tests can tell requests apart. */
function okReply(
  path: string,
  body: Record<string, unknown>,
  usage = { prompt_tokens: 100, completion_tokens: 50 },
) {
  const msgs = body.messages as { content: string }[] | undefined;
  const text = `echo:${msgs ? msgs[msgs.length - 1]!.content : String(body.prompt)}`;
  return path.endsWith('/chat/completions')
    ? {
        id: 'x',
        object: 'chat.completion',
        choices: [
          { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' },
        ],
        usage,
      }
    : {
        id: 'x',
        object: 'text_completion',
        choices: [{ index: 0, text, finish_reason: 'length' }],
        usage,
      };
}

export async function startFaultServer(): Promise<FaultServer> {
  const hits: Hit[] = [];
  const count = (s: string): number => hits.filter((h) => h.scenario === s).length;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const [, scenario = '', ...rest] = url.pathname.split('/');
      const path = '/' + rest.join('/');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<
          string,
          unknown
        >;
      } catch {
        // recorded as {}
      }
      hits.push({ scenario, path, at: Date.now(), body, auth: req.headers.authorization });
      const n = count(scenario);
      const json = (status: number, obj: unknown, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(obj));
      };
      if (req.method === 'GET' && path === '/v1/models')
        return json(200, { object: 'list', data: [{ id: 'm1' }, { id: 'm2' }] });
      switch (scenario) {
        case 'ok':
          return json(200, okReply(path, body));
        case 'auth':
          if (req.headers.authorization !== 'Bearer sekrit')
            return json(401, { error: { message: 'Incorrect API key provided' } });
          return json(200, okReply(path, body));
        case 'retry-after-then-ok': // one 429 asking for 1 s, then fine
          if (n === 1)
            return json(429, { error: { message: 'slow down' } }, { 'retry-after': '1' });
          return json(200, okReply(path, body));
        case 'retry-after-huge': // asks for an hour: not waited for
          return json(429, { error: { message: 'quota' } }, { 'retry-after': '3600' });
        case 'always-429':
          return json(429, { error: { message: 'rate limit' } });
        case '500-twice':
          if (n <= 2) return json(500, { error: { message: 'boom' } });
          return json(200, okReply(path, body));
        case 'always-503':
          return json(503, { error: { message: 'overloaded' } });
        case 'slow': // answers after 1.5 s: past the test's timeout
          setTimeout(() => {
            if (!res.destroyed) json(200, okReply(path, body));
          }, 1500);
          return;
        case 'malformed':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"choices": [ {"message": ');
        case 'html':
          res.writeHead(200, { 'content-type': 'text/html' });
          return res.end('<html><body>Welcome to nginx!</body></html>');
        case 'no-text':
          return json(200, {
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: null },
                finish_reason: 'content_filter',
              },
            ],
          });
        case 'no-choices':
          return json(200, { choices: [] });
        case 'reset':
          req.socket.destroy();
          return;
        case 'truncated': // promises 500 bytes, sends 30, hangs up
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
          res.write('{"choices":[{"message":{"cont');
          setTimeout(() => req.socket.destroy(), 20);
          return;
        case 'not-found':
          return json(404, {
            error: { message: `The model '${String(body.model)}' does not exist` },
          });
        case 'bad-request':
          return json(400, { error: { message: 'max_tokens is too large for model' } });
        case 'no-usage': {
          const r = okReply(path, body) as Record<string, unknown>;
          delete r.usage;
          return json(200, r);
        }
        default:
          return json(404, { error: { message: `no scenario ${scenario}` } });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    count,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
