// Beyond the acceptance list: the health timer. When no frame (pings
// included) arrives for 2.5 keepalive intervals, the page drops the stream
// and opens a new one that resumes where the old one stopped. A TCP proxy
// between browser and server silences the stream's connection.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { launchBrowser, openPage, startServer, waitText } from './support.mjs';

let server;
let browser;
let proxy;
const connections = [];

// Forwards to the server; `silenceStreams()` stops passing bytes on every
// connection that carried GET /api/events, without closing it.
function startProxy(target) {
  const { hostname, port } = new URL(target);
  const listener = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    const connection = { stream: false, silent: false, client, upstream };
    connections.push(connection);
    client.on('data', (bytes) => {
      if (String(bytes).startsWith('GET /api/events')) connection.stream = true;
      if (!connection.silent) upstream.write(bytes);
    });
    upstream.on('data', (bytes) => {
      if (!connection.silent) client.write(bytes);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', () => {});
      socket.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  return new Promise((resolve) => listener.listen(0, '127.0.0.1', () => resolve(listener)));
}

before(async () => {
  server = await startServer(['--keepalive-secs', '1']);
  proxy = await startProxy(server.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const { client, upstream } of connections) {
    client.destroy();
    upstream.destroy();
  }
  proxy?.close();
  await server?.stop();
});

test('a silent stream is replaced after 2.5 keepalives and resumes', async () => {
  const { agent } = server;
  const page = await openPage(await browser.newContext(), `http://127.0.0.1:${proxy.address().port}`);
  const reopened = page.waitForRequest((request) => new URL(request.url()).pathname === '/api/events', { timeout: 3500 });
  const silencedAt = Date.now();
  for (const connection of connections) if (connection.stream) connection.silent = true;

  const shown = waitText(page, '#clarify-card .clarify-question', 'Heard after the silence?', 3500);
  await agent.submitClarify({ session_id: 'h1', question: 'Heard after the silence?' });
  const request = await reopened;
  const after = Date.now() - silencedAt;
  assert.ok(after >= 1500, `the stream was replaced after only ${after} ms`);
  assert.ok(new URL(request.url()).searchParams.has('last_event_id'), 'the new stream does not resume');
  await shown;
  assert.equal(await page.locator('#connection').getAttribute('data-state'), 'live');
  assert.deepEqual(page.problems, []);
});
