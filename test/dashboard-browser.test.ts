/**
 * The registrar's dashboard (GET /) in a real headless Chromium, against the BUILT registrar: it
 * follows /events live (no reload), refreshes heartbeat times, fits a phone screen, and fetches
 * nothing from anywhere but the registrar.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeBrowser, launchChromium } from './support/browser.js';
import { freePort, removeTempDirs, runSvcmesh, startSvcmesh, stopAll, type SvcmeshProcess } from './support/processes.js';

const TTL_SECONDS = 3;
/** Bound on the page showing a change the registrar has made (events are pushed at once). */
const SHOWN_MS = 5_000;
/** Eviction happens TTL after the last heartbeat, checked every second; plus slack for a busy machine. */
const EVICTED_MS = (TTL_SECONDS + 5) * 1_000;
const PHONE = { width: 390, height: 844 };

const section = (name: string) => `section[data-service="${name}"]`;
const row = (name: string, url: string) => `${section(name)} tr[data-url="${url}"]`;

describeBrowser('dashboard in headless Chromium', () => {
  let registrar: SvcmeshProcess;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const requests: string[] = [];
  const consoleErrors: string[] = [];

  const svcmesh = async (...args: string[]) => {
    const result = await runSvcmesh([...args, '--registrar', registrar.url]);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    return result;
  };
  /** POSTs `{service_name, service_url}` to a registrar's `path`, which must answer 200. */
  const postInstance = async (registrarUrl: string, path: string, name: string, url: string) => {
    const response = await fetch(new URL(path, registrarUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service_name: name, service_url: url }),
    });
    expect(response.status).toBe(200);
  };
  const heartbeat = (name: string, url: string) => postInstance(registrar.url, '/heartbeat', name, url);
  /** Heartbeats every `url` of `name` every 500 ms until the returned stop() (which waits for the last one). */
  const keepAlive = (name: string, urls: string[]) => {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        await Promise.all(urls.map((url) => heartbeat(name, url)));
        await sleep(500);
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  };
  /**
   * No horizontal scroll on the phone. Mobile Chromium zooms out to fit content that is too wide,
   * which widens innerWidth along with it: so both are held to the phone's width, not to each other.
   */
  const expectFitsPhone = async () => {
    const widths = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
    expect(widths.innerWidth).toBe(PHONE.width);
    expect(widths.scrollWidth).toBeLessThanOrEqual(widths.innerWidth);
  };

  beforeAll(async () => {
    [registrar, browser] = await Promise.all([
      startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', String(TTL_SECONDS)]),
      launchChromium(),
    ]);
    context = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    page = await context.newPage();
    page.on('request', (request) => requests.push(request.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
    await page.goto(registrar.url, { waitUntil: 'load', timeout: 10_000 });
    // Marks this document: if the page reloaded, the mark would be gone.
    await page.evaluate(() => ((window as unknown as { svcmeshMark: number }).svcmeshMark = 1));
  });

  afterAll(async () => {
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await stopAll();
    removeTempDirs();
  });

  const notReloaded = () => page.evaluate(() => (window as unknown as { svcmeshMark?: number }).svcmeshMark === 1);

  it('shows "No services registered." at first, live, without horizontal scroll on a phone', async () => {
    await page.getByText('No services registered.').waitFor({ timeout: SHOWN_MS });
    await page.locator('#status.live').waitFor({ timeout: SHOWN_MS });
    expect(await page.title()).toBe('svcmesh registrar');
    await expectFitsPhone();
  });

  it('shows a service registered after the page loaded, without reload, and still fits a phone', async () => {
    // One long word: the page has to break it, or a phone would scroll sideways.
    const long = 'http://averyveryverylonghostnamethatnophonescreencouldeverfitononeline.internal:65535/status';
    // Heartbeats start after each registration (one with service_url would register the instance itself).
    const stops: (() => Promise<void>)[] = [];
    try {
      await svcmesh('register', 'billing', 'http://127.0.0.1:7001');
      stops.push(keepAlive('billing', ['http://127.0.0.1:7001']));
      await page.waitForSelector(row('billing', 'http://127.0.0.1:7001'), { timeout: SHOWN_MS });
      await svcmesh('register', 'billing', long);
      stops.push(keepAlive('billing', [long]));
      await page.waitForSelector(row('billing', long), { timeout: SHOWN_MS });

      expect(await notReloaded()).toBe(true);
      await expect.poll(() => page.locator(`${section('billing')} h2`).textContent()).toBe('billing 2 instances');
      const cells = await page.locator(`${row('billing', 'http://127.0.0.1:7001')} td`).allTextContents();
      expect(cells[0]).toBe('http://127.0.0.1:7001');
      expect(cells[1]).toMatch(/^\d+ s ago$/);
      expect(cells[2]).toMatch(/^\d+ s$/);
      expect(await page.getByText('No services registered.').count()).toBe(0);
      await expectFitsPhone();
    } finally {
      await Promise.all(stops.map((stop) => stop()));
    }
    await svcmesh('deregister', 'billing');
    await page.waitForSelector(section('billing'), { state: 'detached', timeout: SHOWN_MS });
  });

  it("shows an instance's metadata, in a column only a service with metadata has", async () => {
    const tagged = 'http://127.0.0.1:7010';
    const plain = 'http://127.0.0.1:7011';
    const stops: (() => Promise<void>)[] = [];
    try {
      await svcmesh('register', 'tagged_ai', tagged, '--metadata', '{"model":"llama3.2","zone":"eu west"}');
      stops.push(keepAlive('tagged_ai', [tagged]));
      await svcmesh('register', 'untagged', plain);
      stops.push(keepAlive('untagged', [plain]));
      await page.waitForSelector(row('tagged_ai', tagged), { timeout: SHOWN_MS });
      await page.waitForSelector(row('untagged', plain), { timeout: SHOWN_MS });
      const cells = await page.locator(`${row('tagged_ai', tagged)} td`).allTextContents();
      expect(cells[3]).toBe('model=llama3.2 zone="eu west"');
      expect(await page.locator(`${section('tagged_ai')} th`).allTextContents()).toEqual(['URL', 'Last heartbeat', 'Expires in', 'Metadata']);
      expect(await page.locator(`${row('untagged', plain)} td`).count()).toBe(3);
      await expectFitsPhone();
    } finally {
      await Promise.all(stops.map((stop) => stop()));
    }
    await svcmesh('deregister', 'tagged_ai');
    await svcmesh('deregister', 'untagged');
    await page.waitForSelector(section('untagged'), { state: 'detached', timeout: SHOWN_MS });
  });

  it('marks an instance a forward could not reach, live and for a page opened afterwards', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const stop = keepAlive('gone_dash', [dead]);
    try {
      await svcmesh('register', 'gone_dash', dead);
      await page.waitForSelector(row('gone_dash', dead), { timeout: SHOWN_MS });
      expect(await page.locator(`${row('gone_dash', dead)}.instance-down`).count()).toBe(0);
      const failed = await fetch(`${registrar.url}/forward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'gone_dash', message: 'hi' }) });
      expect(failed.status).toBe(502);
      await page.waitForSelector(`${row('gone_dash', dead)}.instance-down`, { timeout: SHOWN_MS });
      // A page opened after the `down` event learns of it from the snapshot.
      const late = await context!.newPage();
      try {
        await late.goto(registrar.url, { waitUntil: 'load', timeout: 10_000 });
        await late.waitForSelector(`${row('gone_dash', dead)}.instance-down`, { timeout: SHOWN_MS });
      } finally {
        await late.close();
      }
    } finally {
      await stop();
    }
    await svcmesh('deregister', 'gone_dash');
    await page.waitForSelector(section('gone_dash'), { state: 'detached', timeout: SHOWN_MS });
  });

  it('drops the unreachable mark of a deregistered or evicted instance, so one registered again looks as /services says', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const name = 'back_again';
    const markDown = async () => {
      const failed = await fetch(`${registrar.url}/forward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: name, message: 'hi' }) });
      expect(failed.status).toBe(502);
      await page.waitForSelector(`${row(name, dead)}.instance-down`, { timeout: SHOWN_MS });
    };
    /** The row is drawn at once with its mark (or none): what it shows now is what it shows. */
    const expectShownAsServerSays = async () => {
      await page.waitForSelector(row(name, dead), { timeout: SHOWN_MS });
      const served = (await (await fetch(`${registrar.url}/services/${name}`)).json()) as { instances: { url: string; down?: boolean }[] };
      expect(served.instances).toEqual([expect.objectContaining({ url: dead })]);
      expect(served.instances[0]!.down).toBeUndefined();
      expect(await page.locator(`${row(name, dead)}.instance-down`).count()).toBe(0);
    };

    // Deregistered, then registered again.
    let stop = keepAlive(name, [dead]);
    try {
      await page.waitForSelector(row(name, dead), { timeout: SHOWN_MS });
      await markDown();
    } finally {
      await stop();
    }
    await svcmesh('deregister', name);
    await page.waitForSelector(section(name), { state: 'detached', timeout: SHOWN_MS });
    stop = keepAlive(name, [dead]);
    try {
      await expectShownAsServerSays();
      await markDown();
    } finally {
      await stop();
    }

    // Evicted, then registered again by a heartbeat that names its URL.
    await page.waitForSelector(section(name), { state: 'detached', timeout: EVICTED_MS });
    stop = keepAlive(name, [dead]);
    try {
      await expectShownAsServerSays();
    } finally {
      await stop();
    }
    await svcmesh('deregister', name);
    await page.waitForSelector(section(name), { state: 'detached', timeout: SHOWN_MS });
    expect(await notReloaded()).toBe(true);
  });

  it('wraps a 128-character service name on a 360 px window instead of scrolling sideways', async () => {
    const name = 'payments' + 'billingapi'.repeat(12);
    expect(name).toHaveLength(128);
    const url = 'http://127.0.0.1:7301';
    const narrow = await browser!.newContext({ viewport: { width: 360, height: 740 } });
    const stop = keepAlive(name, [url]);
    try {
      const narrowPage = await narrow.newPage();
      await narrowPage.goto(registrar.url, { waitUntil: 'load', timeout: 10_000 });
      await narrowPage.waitForSelector(row(name, url), { timeout: SHOWN_MS });
      const widths = await narrowPage.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
      expect(widths.clientWidth).toBe(360);
      expect(widths.scrollWidth).toBeLessThanOrEqual(widths.clientWidth);
      expect(await narrowPage.locator(`${section(name)} h2`).textContent()).toBe(`${name} 1 instance`);
    } finally {
      await stop();
      await narrow.close();
    }
    await svcmesh('deregister', name);
    await page.waitForSelector(section(name), { state: 'detached', timeout: SHOWN_MS });
  });

  it('refreshes the last heartbeat of a live instance, and drops one that stopped heartbeating after the TTL', async () => {
    const [a, b] = ['http://127.0.0.1:7101', 'http://127.0.0.1:7102'];
    await svcmesh('register', 'ollama_service', a);
    await svcmesh('register', 'ollama_service', b);
    const stopA = keepAlive('ollama_service', [a]);
    try {
      await page.waitForSelector(row('ollama_service', a), { timeout: SHOWN_MS });
      await page.waitForSelector(row('ollama_service', b), { timeout: SHOWN_MS });
      const firstSeen = await page.getAttribute(row('ollama_service', a), 'data-last-heartbeat');

      // b's last (and only) heartbeat was its registration; it must go TTL later, not before.
      await heartbeat('ollama_service', b);
      const lastHeartbeatB = Date.now();
      await page.waitForSelector(row('ollama_service', b), { state: 'detached', timeout: EVICTED_MS });
      expect(Date.now() - lastHeartbeatB).toBeGreaterThanOrEqual(TTL_SECONDS * 1_000 - 500);

      // a kept heartbeating: still there, and the page took its newer heartbeat time.
      expect(await page.locator(row('ollama_service', a)).count()).toBe(1);
      await expect.poll(() => page.locator(`${section('ollama_service')} h2`).textContent()).toBe('ollama_service 1 instance');
      await expect
        .poll(async () => Date.parse((await page.getAttribute(row('ollama_service', a), 'data-last-heartbeat')) ?? ''), { timeout: SHOWN_MS })
        .toBeGreaterThan(Date.parse(firstSeen ?? ''));
      expect(await page.locator(`${row('ollama_service', a)} td`).nth(2).textContent()).not.toBe('0 s');
    } finally {
      await stopA();
    }
    // Now a stops too: evicted, and the service with it.
    await page.waitForSelector(section('ollama_service'), { state: 'detached', timeout: EVICTED_MS });
    await page.getByText('No services registered.').waitFor({ timeout: SHOWN_MS });
    expect(await notReloaded()).toBe(true);
  });

  it('drops a deregistered instance, then a deregistered service, without reload', async () => {
    const [a, b] = ['http://127.0.0.1:7201', 'http://127.0.0.1:7202'];
    await svcmesh('register', 'search', a);
    await svcmesh('register', 'search', b);
    const stop = keepAlive('search', [a, b]);
    let stopped = false;
    try {
      await page.waitForSelector(row('search', a), { timeout: SHOWN_MS });
      await page.waitForSelector(row('search', b), { timeout: SHOWN_MS });
      // A heartbeat with service_url registers the instance again: stop them before deregistering.
      await stop();
      stopped = true;

      // Exit 0 means the instance was still registered: what removes it is the deregistration, not the TTL.
      await svcmesh('deregister', 'search', b);
      await page.waitForSelector(row('search', b), { state: 'detached', timeout: SHOWN_MS });
      expect(await page.locator(row('search', a)).count()).toBe(1);

      await svcmesh('deregister', 'search');
      await page.waitForSelector(section('search'), { state: 'detached', timeout: SHOWN_MS });
      await page.getByText('No services registered.').waitFor({ timeout: SHOWN_MS });
      expect(await notReloaded()).toBe(true);
    } finally {
      if (!stopped) await stop();
    }
  });

  it('folds a big catalog service by service, draws at most 500 rows, and reads times only for what is unfolded', async () => {
    const big = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    const bigPage = await context!.newPage();
    const asked: string[] = [];
    bigPage.on('request', (request) => asked.push(new URL(request.url()).pathname));
    bigPage.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
    const register = (name: string, url: string) => postInstance(big.url, '/register', name, url);
    const fleet = [
      ...Array.from({ length: 600 }, (_, i) => ['big-a', `http://10.0.${Math.floor(i / 250)}.${i % 250}:8080`]),
      ...Array.from({ length: 10 }, (_, i) => ['big-b', `http://10.1.0.${i}:8080`]),
      ...Array.from({ length: 250 }, (_, i) => [`svc-${i}`, `http://10.2.0.${i}:8080`]),
    ];
    for (let i = 0; i < fleet.length; i += 50) await Promise.all(fleet.slice(i, i + 50).map(([name, url]) => register(name!, url!)));
    try {
      await bigPage.goto(big.url, { waitUntil: 'load', timeout: 10_000 });
      const header = (name: string) => bigPage.locator(`${section(name)} h2`);
      await expect.poll(() => header('big-a').textContent(), { timeout: SHOWN_MS }).toBe('big-a 600 instances');
      expect(await header('big-b').textContent()).toBe('big-b 10 instances');
      // Folded: nothing but the two headers is drawn, and no times are read at all.
      expect(await bigPage.locator('tr[data-url]').count()).toBe(0);
      await sleep(2_500);
      expect(asked.filter((path) => path === '/catalog' || path.startsWith('/services'))).toEqual([]);

      // 252 services: the first 200 by name are drawn, and the filter finds the others.
      expect(await bigPage.locator('section').count()).toBe(200);
      expect(await bigPage.locator('#services > p.more').textContent()).toBe('52 more services not shown: filter by name to find one');
      await bigPage.fill('#filter', 'SVC-24');
      await expect.poll(() => bigPage.locator('section').count(), { timeout: SHOWN_MS }).toBe(11);
      expect(await header('svc-249').textContent()).toBe('svc-249 1 instance');
      await bigPage.fill('#filter', 'nothing-like-it');
      await bigPage.getByText('No service name contains "nothing-like-it".').waitFor({ timeout: SHOWN_MS });
      await bigPage.fill('#filter', '');
      await expect.poll(() => bigPage.locator('section').count(), { timeout: SHOWN_MS }).toBe(200);

      await header('big-b').click();
      await expect.poll(() => bigPage.locator(`${section('big-b')} tr[data-url]`).count(), { timeout: SHOWN_MS }).toBe(10);
      const url = 'http://10.1.0.3:8080';
      const before = Date.parse((await bigPage.getAttribute(row('big-b', url), 'data-last-heartbeat')) ?? '');
      await sleep(1_100);
      await postInstance(big.url, '/heartbeat', 'big-b', url);
      await expect
        .poll(async () => Date.parse((await bigPage.getAttribute(row('big-b', url), 'data-last-heartbeat')) ?? ''), { timeout: SHOWN_MS })
        .toBeGreaterThan(before);
      expect(asked).toContain('/services/big-b');
      expect(asked).not.toContain('/services/big-a');
      expect(asked).not.toContain('/catalog');

      // A new instance shows at once in the unfolded service; the big one draws 500 rows and says so.
      await register('big-b', 'http://10.1.0.99:8080');
      await bigPage.waitForSelector(row('big-b', 'http://10.1.0.99:8080'), { timeout: SHOWN_MS });
      await header('big-a').click();
      await expect.poll(() => bigPage.locator(`${section('big-a')} tr[data-url]`).count(), { timeout: SHOWN_MS }).toBe(500);
      expect(await bigPage.locator(`${section('big-a')} .more`).textContent()).toMatch(/^100 more not shown/);
      // Folded again by the reader, it stays folded when the catalog changes.
      await header('big-b').click();
      await register('big-b', 'http://10.1.0.100:8080');
      await expect.poll(() => header('big-b').textContent(), { timeout: SHOWN_MS }).toBe('big-b 12 instances');
      expect(await bigPage.locator(`${section('big-b')} tr[data-url]`).count()).toBe(0);
    } finally {
      await bigPage.close();
      await big.stop();
    }
  });

  it('loaded with no console errors and asked nothing of any host but the registrar', () => {
    const origin = new URL(registrar.url).origin;
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.filter((url) => !url.startsWith('data:') && new URL(url).origin !== origin)).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});

describeBrowser('dashboard of a registrar whose reads need a token', () => {
  const TOKEN = 'open-sesame';
  const UNSENDABLE = 'that token cannot be sent in an HTTP header (use the token exactly as given to --token)';
  let registrar: SvcmeshProcess;
  let browser: Browser | undefined;

  beforeAll(async () => {
    [registrar, browser] = await Promise.all([
      startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', TOKEN, '--protect-reads']),
      launchChromium(),
    ]);
  });

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await stopAll();
    removeTempDirs();
  });

  /** A page of its own in a fresh context, so no test sees another's stored token. */
  const withPage = async (body: (page: Page) => Promise<void>) => {
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(registrar.url, { waitUntil: 'load', timeout: 10_000 });
      await body(page);
    } finally {
      await context.close();
    }
  };
  const statusText = (page: Page) => page.locator('#status').textContent();
  const storedToken = (page: Page) => page.evaluate(() => localStorage.getItem('svcmesh-token'));
  const form = (page: Page) => page.locator('#auth');
  const connect = async (page: Page, token: string) => {
    await form(page).waitFor({ state: 'visible', timeout: SHOWN_MS });
    await page.fill('#token', token);
    await page.click('#auth button');
  };
  /** The page asks again, says why, and keeps no token for the next visit. */
  const expectAskedAgain = async (page: Page, status: string | RegExp) => {
    await expect.poll(() => statusText(page), { timeout: SHOWN_MS }).toMatch(status);
    expect(await form(page).isVisible()).toBe(true);
    expect(await storedToken(page)).toBeNull();
  };
  const expectLiveWith = async (page: Page, token: string) => {
    await page.locator('#status.live').waitFor({ timeout: SHOWN_MS });
    expect(await form(page).isVisible()).toBe(false);
    expect(await storedToken(page)).toBe(token);
  };

  it('asks for the token, and is live once given the right one', async () => {
    await withPage(async (page) => {
      await expect.poll(() => statusText(page), { timeout: SHOWN_MS }).toBe('this registrar needs a token');
      await connect(page, TOKEN);
      await expectLiveWith(page, TOKEN);
    });
  });

  it('says a wrong token was not accepted, with the registrar\'s reason, and forgets it', async () => {
    await withPage(async (page) => {
      await connect(page, 'wrong');
      await expectAskedAgain(page, /^token not accepted: The token is not valid: check --token/);
      await connect(page, TOKEN);
      await expectLiveWith(page, TOKEN);
    });
  });

  it.each(['pass✓word', '\u201copen-sesame\u201d'])('refuses the token %s that no HTTP header can carry, asks again and keeps nothing', async (bad) => {
    await withPage(async (page) => {
      await connect(page, bad);
      await expectAskedAgain(page, UNSENDABLE);
      await connect(page, TOKEN);
      await expectLiveWith(page, TOKEN);
    });
  });

  it('drops such a token already stored (by an older page) rather than reconnecting for ever', async () => {
    await withPage(async (page) => {
      // The first visit settles first: its own "needs a token" clears the stored token, and must
      // not clear the one put there below.
      await expect.poll(() => statusText(page), { timeout: SHOWN_MS }).toBe('this registrar needs a token');
      await page.evaluate(() => localStorage.setItem('svcmesh-token', 'pass✓word'));
      await page.reload({ waitUntil: 'load', timeout: 10_000 });
      await expectAskedAgain(page, UNSENDABLE);
    });
  });

  it('forgets the stored token on "forget token", and asks for one again', async () => {
    await withPage(async (page) => {
      const forget = page.getByRole('button', { name: 'forget token' });
      expect(await forget.isVisible()).toBe(false);
      await connect(page, TOKEN);
      await expectLiveWith(page, TOKEN);
      await Promise.all([page.waitForEvent('load', { timeout: 10_000 }), forget.click()]);
      await expectAskedAgain(page, 'this registrar needs a token');
      expect(await forget.isVisible()).toBe(false);
    });
  });
});
