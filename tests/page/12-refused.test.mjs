// A page the server refuses (403) says why and what to change, instead of
// "offline": opened at a name that is not local (askgate.test, resolved to
// 127.0.0.1 by Chromium alone), every API call of a loopback-bound server
// is refused by the Host check (DNS rebinding). The indicator reads
// "refused", a banner shows the server's hint, and the server logs the 403
// with what it expected. Started as the hint says, the same address works.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import path from 'node:path';
import { ensureArtifactsDir, launchBrowser, startServer, waitConnection, waitText } from './support.mjs';

const NAME = 'askgate.test';
let browser;

before(async () => {
  browser = await launchBrowser([`--host-resolver-rules=MAP ${NAME} 127.0.0.1`]);
});
after(async () => {
  await browser?.close();
});

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('a refused page shows the hint; the flag it names lets the page in', async () => {
  // On another free port when the one found was taken before askgate's
  // bind (a second test run beside this one).
  let port, refused;
  for (let attempt = 1; !refused; attempt++) {
    port = await freePort();
    refused = await startServer(['--bind', `127.0.0.1:${port}`]).catch((error) => {
      if (attempt === 5 || !/exited .* before listening/.test(error.message)) throw error;
    });
  }
  const address = `http://${NAME}:${port}`;
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${address}/`);
    await waitConnection(page, 'refused', 5000);
    const hint = `if askgate's page is at ${address}, start askgate with --public-url ${address}`;
    await waitText(page, '#refusal .refusal-reason', `host not allowed: ${NAME}:${port}`, 1000);
    await waitText(page, '#refusal .refusal-hint', hint, 1000);
    assert.equal(await page.locator('#connection .connection-label').textContent(), 'refused');
    await page.screenshot({ path: path.join(ensureArtifactsDir(), 'refused-host.png') });
    const logged = refused.output.join('').split('\n').find((line) => line.includes('403 GET /api/'));
    assert.ok(logged, `a 403 is logged:\n${refused.output.join('')}`);
    for (const part of [`host not allowed: ${NAME}:${port}`, 'expected Host localhost, *.localhost or an IP address', hint]) {
      assert.ok(logged.includes(part), `${logged}\nlacks: ${part}`);
    }
  } finally {
    await refused.stop();
  }

  // A public URL means the network reaches askgate; this test is about the
  // Host check, so it runs without tokens, explicitly.
  const allowed = await startServer(['--bind', `127.0.0.1:${port}`, '--public-url', address, '--insecure-no-auth']);
  try {
    const page = await (await browser.newContext()).newPage();
    const problems = [];
    page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
    await page.goto(`${address}/`);
    await waitConnection(page, 'live', 5000);
    assert.ok(await page.locator('#refusal').isHidden());
    const shown = waitText(page, '#clarify-card .clarify-question', 'Allowed now?', 2000);
    const { clarify_id } = await allowed.agent.submitClarify({ session_id: 'r1', question: 'Allowed now?', choices: ['yes'] });
    await shown;
    await page.getByRole('button', { name: 'yes' }).click();
    assert.deepEqual(await allowed.agent.waitClarify('r1', clarify_id), { status: 'answered', response: 'yes' });
    assert.deepEqual(problems, []);
  } finally {
    await allowed.stop();
  }
});
