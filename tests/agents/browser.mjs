// The human at the page, for the agent tests: Debian's Chromium driven by
// playwright-core through tests/page/support.mjs (its launch and waits),
// signed in with the human token as a person would. Missing playwright-core
// or Chromium is a skip, or a failure under ASKGATE_REQUIRE_AGENTS (as a
// missing agent is); tests/agents/install.sh installs playwright-core.

import { existsSync } from 'node:fs';
import { HUMAN_TOKEN } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

async function load() {
  if (!existsSync(CHROMIUM)) return { skip: `${CHROMIUM} is missing (apt-get install chromium)` };
  try {
    return { support: await import('../page/support.mjs') };
  } catch (error) {
    return { skip: `playwright-core is not installed in tests/page (sh tests/agents/install.sh): ${error.message}` };
  }
}

/// `{support}` (tests/page/support.mjs), or `{skip}` with why.
export const page = await load();
if (page.skip && process.env.ASKGATE_REQUIRE_AGENTS) {
  throw new Error(`ASKGATE_REQUIRE_AGENTS is set: ${page.skip}`);
}

/// A new page of askgate at `url` (with `hash`), signed in with the human
/// token and live.
export async function signedIn(browser, url, hash = '') {
  const tab = await (await browser.newContext()).newPage();
  const problems = [];
  tab.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  tab.problems = problems;
  await tab.goto(`${url}/${hash}`);
  await tab.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
  await tab.locator('#login-token').fill(HUMAN_TOKEN);
  await tab.locator('#login-token').press('Enter');
  await page.support.waitConnection(tab, 'live', 10000);
  return tab;
}
