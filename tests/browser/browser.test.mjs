// The web-signal example in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Two tabs of one browser chat through the example server, once with HTTP
// and WebSocket on separate ports (seed 000), once sharing one port (seed 001), and once
// over TLS (Https and Wss on one port, with a certificate made for the test); then one tab on
// a 390 px wide screen with 60 messages (a margin, a list that scrolls inside itself).
//
//   WEB_SIGNAL_BIN=target/release/examples/web_signal node --test tests/browser/
//
// Environment: WEB_SIGNAL_BIN (required) is the built example; CHROMIUM (default
// /usr/bin/chromium); UPDATE_SCREENSHOT=1 copies the screenshot to docs/screenshot.png;
// TLS_CERT and TLS_KEY (PEM, for localhost and 127.0.0.1; the TLS case is skipped without
// them; run.sh makes them with openssl).
// Nothing here is built or downloaded; everything listens on 127.0.0.1 only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const BIN = process.env.WEB_SIGNAL_BIN && path.resolve(process.env.WEB_SIGNAL_BIN);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = path.join(REPO, 'docs', 'screenshot.png');
const TLS = process.env.TLS_CERT && process.env.TLS_KEY
  ? { cert: path.resolve(process.env.TLS_CERT), key: path.resolve(process.env.TLS_KEY) }
  : null;

// The flags this machine needs (see .library/env/machines/rust.md); Playwright adds
// --headless and the user-data-dir comes from launchPersistentContext.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const START_TIMEOUT = 15_000; // the example printing its URL
const WAIT = 10_000; // anything the page should show
const CLOSE_TIMEOUT = 5_000; // closing the browser or the example

// The [date] reply: the server's local time as Pode's [datetime]::Now prints it in en-US,
// M/d/yyyy h:mm:ss tt (12/4/2026 9:30:05 PM).
const DATE_LIKE = /^(1[0-2]|[1-9])\/([12]\d|3[01]|[1-9])\/\d{4} (1[0-2]|[1-9]):[0-5]\d:[0-5]\d [AP]M$/;

// Processes still running if the test process goes away without reaching a finally.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port nobody listens on right now (the kernel's pick). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with `promise`, or rejects after `ms` with `what` in the message. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Starts the example with `args`; resolves once it prints the page's URL. */
function startExample(args) {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const example = {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        try {
          await within(CLOSE_TIMEOUT, 'the example stopping', exited);
        } catch {
          child.kill('SIGKILL');
          await exited;
        }
      }
    },
  };
  const url = new Promise((resolve, reject) => {
    const look = (chunk) => {
      output += chunk;
      const found = output.match(/open (https?:\/\/127\.0\.0\.1:\d+\/) in two browsers/);
      if (found) resolve(found[1]);
    };
    child.stdout.setEncoding('utf8').on('data', look);
    child.stderr.setEncoding('utf8').on('data', look);
    child.on('error', reject);
    exited.then(({ code, signal }) => reject(new Error(`the example exited (${code ?? signal}) before printing its URL`)));
  });
  return within(START_TIMEOUT, 'the example printing its URL', url)
    .then((address) => Object.assign(example, { url: address }))
    .catch(async (error) => {
      await example.stop();
      error.message += `\n--- the example's output ---\n${output}`;
      throw error;
    });
}

/** Opens a fresh headless Chromium (its own new profile folder) with two tabs. */
async function openBrowser() {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'signalhub-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      // The TLS case's certificate is made for the test and trusted by nobody.
      ignoreHTTPSErrors: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 900, height: 600 },
      timeout: START_TIMEOUT,
    });
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
  context.setDefaultTimeout(WAIT);
  const errors = [];
  const tab = async (existing) => {
    const page = existing ?? (await context.newPage());
    page.on('pageerror', (error) => errors.push(error.message));
    return page;
  };
  const tabs = [await tab(context.pages()[0]), await tab()];
  return {
    tabs,
    errors,
    request: context.request,
    async close() {
      try {
        await within(CLOSE_TIMEOUT, 'closing chromium', context.close());
      } finally {
        await rm(profile, { recursive: true, force: true });
      }
    },
  };
}

/** The texts in a tab's message list, oldest first. */
function messages(page) {
  return page.$$eval('#messages li.message > span', (spans) => spans.map((s) => s.textContent));
}

/** Waits until a tab's list has a message equal to `text` (or matching a RegExp). */
async function waitForMessage(page, text, name) {
  const pattern = text instanceof RegExp ? { source: text.source, flags: text.flags } : null;
  try {
    await page.waitForFunction(
      ({ text, pattern }) => {
        const spans = document.querySelectorAll('#messages li.message > span');
        const test = pattern ? (s) => new RegExp(pattern.source, pattern.flags).test(s) : (s) => s === text;
        return [...spans].some((span) => test(span.textContent));
      },
      { text: pattern ? null : text, pattern },
      { timeout: WAIT, polling: 50 },
    );
  } catch (error) {
    const seen = await messages(page).catch(() => '(unreadable)');
    throw new Error(`${name} never showed ${text}; it shows ${JSON.stringify(seen)}`, { cause: error });
  }
}

async function waitConnected(page, name) {
  try {
    await page.waitForSelector('#status[data-state="connected"]', { timeout: WAIT });
  } catch (error) {
    const status = await page.textContent('#status').catch(() => '(unreadable)');
    throw new Error(`${name} never connected; its status says ${JSON.stringify(status)}`, { cause: error });
  }
}

async function broadcastFrom(page, text) {
  // A tab in the background gets no animation frames, which Playwright's click waits for.
  await page.bringToFront();
  await page.fill('#bc-form input[name="message"]', text);
  await page.click('#bc-form input[type="submit"]');
}

/**
 * Starts the example with `args`, opens the browser, runs `body(example, browser)`, checks the
 * page logged no errors, and closes both whatever happens (a failure carries the example's
 * output).
 */
async function withExample(args, body) {
  const example = await startExample(args);
  let browser;
  try {
    browser = await openBrowser();
    await body(example, browser);
    assert.deepEqual(browser.errors, [], 'errors in the page');
  } catch (error) {
    error.message += `\n--- the example's output ---\n${example.output()}`;
    throw error;
  } finally {
    try {
      if (browser) await browser.close();
    } finally {
      await example.stop();
    }
  }
}

/**
 * One configuration: start the example, open two tabs, chat, [date], POST /broadcast.
 * `wsPort` is the separate WebSocket port, or null when it shares the page's port.
 */
async function chatScenario(t, { args, wsPort, label, date, screenshot, tls = false }) {
  await withExample(args, async (example, browser) => {
    const pagePort = Number(new URL(example.url).port);
    assert.equal(new URL(example.url).protocol, tls ? 'https:' : 'http:');
    // Through the browser's own HTTP client, which takes the test certificate.
    const config = await (await browser.request.get(new URL('/ws-config', example.url).href)).json();
    const scheme = tls ? 'wss' : 'ws';
    assert.deepEqual(config, { port: wsPort, path: '/messages', scheme });

    const [one, two] = browser.tabs;
    const names = ['tab 1', 'tab 2'];
    await Promise.all(browser.tabs.map((tab) => tab.goto(example.url, { timeout: WAIT })));
    await Promise.all(browser.tabs.map((tab, i) => waitConnected(tab, names[i])));
    const wsUrl = `${scheme}://127.0.0.1:${wsPort ?? pagePort}/messages`;
    for (const tab of browser.tabs) {
      assert.equal(await tab.textContent('#status-text'), `connected to ${wsUrl}`);
    }
    const both = (text) => Promise.all(browser.tabs.map((tab, i) => waitForMessage(tab, text, names[i])));

    const chat = `Hello from tab 1, ${label}!`;
    await t.test('a message typed in one tab shows in both', async () => {
      await broadcastFrom(one, chat);
      await both(chat);
      assert.equal(await one.inputValue('#bc-form input[name="message"]'), '');
    });

    await t.test(`${date} is answered with the server's date, in both tabs`, async () => {
      await broadcastFrom(two, date);
      await both(DATE_LIKE);
    });

    await t.test('the browser and the server agree on permessage-deflate; a long message arrives whole', async () => {
      const extensions = await one.evaluate((url) => new Promise((resolve, reject) => {
        const socket = new WebSocket(url);
        socket.onopen = () => {
          resolve(socket.extensions);
          socket.close();
        };
        socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
      }), wsUrl);
      assert.match(extensions, /^permessage-deflate/, `extensions: ${extensions}`);
      // Long enough to go out compressed; every tab inflates it.
      const long = `a long message ${'that repeats itself '.repeat(20)}end`;
      await broadcastFrom(one, long);
      await both(long);
    });

    await t.test('POST /broadcast shows in both tabs', async () => {
      const reply = await browser.request.post(new URL('/broadcast', example.url).href, {
        headers: { 'Content-Type': 'application/json' },
        data: JSON.stringify({ message: 'from http' }),
      });
      assert.equal(reply.status(), 200);
      assert.deepEqual(await reply.json(), { sent: true });
      await both('from http');
      // Each tab got each signal once, in the order sent.
      for (const tab of browser.tabs) {
        const seen = await messages(tab);
        assert.equal(seen.length, 4, JSON.stringify(seen));
        assert.equal(seen[0], chat);
        assert.match(seen[1], DATE_LIKE);
        assert.match(seen[2], /^a long message /);
        assert.equal(seen[3], 'from http');
      }
    });

    if (screenshot) {
      const file = path.join(os.tmpdir(), 'signalhub-web-signal-screenshot.png');
      await one.bringToFront();
      await one.locator('#bc-form input[name="message"]').blur();
      await one.mouse.move(1, 1);
      await one.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide' });
      if (process.env.UPDATE_SCREENSHOT === '1') {
        await mkdir(path.dirname(SCREENSHOT), { recursive: true });
        await copyFile(file, SCREENSHOT);
        t.diagnostic(`screenshot: ${SCREENSHOT}`);
      } else {
        t.diagnostic(`screenshot: ${file} (UPDATE_SCREENSHOT=1 copies it to docs/)`);
      }
    }
  });
}

test('the example binary is given', () => {
  assert.ok(BIN, 'set WEB_SIGNAL_BIN to the built example (target/release/examples/web_signal)');
});

test('separate ports (seed 000): two tabs chat', { timeout: 60_000, skip: !BIN }, async (t) => {
  const wsPort = await freePort();
  await chatScenario(t, {
    args: ['--http', '127.0.0.1:0', '--ws', `127.0.0.1:${wsPort}`],
    wsPort,
    label: 'on separate ports',
    date: '[date]',
    screenshot: true,
  });
});

test('one shared port (seed 001): two tabs chat', { timeout: 60_000, skip: !BIN }, async (t) => {
  await chatScenario(t, {
    args: ['--http', '127.0.0.1:0', '--ws', '127.0.0.1:0'],
    wsPort: null,
    label: 'on one shared port',
    date: '[DATE]',
    screenshot: false,
  });
});

test('over TLS, https and wss on one port: two tabs chat', { timeout: 60_000, skip: !BIN || !TLS }, async (t) => {
  await chatScenario(t, {
    args: ['--http', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--tls', TLS.cert, TLS.key],
    wsPort: null,
    label: 'over tls',
    date: '[date]',
    screenshot: false,
    tls: true,
  });
});

test('on a 390 px wide screen: a margin, and a message list that scrolls inside a bounded height', { timeout: 60_000, skip: !BIN }, async () => {
  await withExample(['--http', '127.0.0.1:0', '--ws', '127.0.0.1:0'], async (example, browser) => {
    const page = browser.tabs[0];
    const viewport = { width: 390, height: 844 };
    await page.setViewportSize(viewport);
    await page.goto(example.url, { timeout: WAIT });
    await waitConnected(page, 'the narrow tab');

    // 60 messages, two of them long: one without a space in 500 characters.
    const count = 60;
    const long = 'x'.repeat(500);
    for (let n = 1; n <= count; n += 1) {
      const message = n === 20 ? long : n === 40 ? `a long sentence ${'that goes on '.repeat(30)}` : `message ${n}`;
      const reply = await browser.request.post(new URL('/broadcast', example.url).href, {
        headers: { 'Content-Type': 'application/json' },
        data: JSON.stringify({ message }),
      });
      assert.equal(reply.status(), 200);
    }
    await waitForMessage(page, `message ${count}`, 'the narrow tab');

    const layout = await page.evaluate(() => {
      const box = (element) => {
        const { left, right, width, height } = element.getBoundingClientRect();
        return { left, right, width, height };
      };
      const list = document.getElementById('messages');
      const last = list.querySelector('li.message:last-child').getBoundingClientRect();
      const inList = list.getBoundingClientRect();
      return {
        items: list.querySelectorAll('li.message').length,
        main: box(document.querySelector('main')),
        list: box(list),
        scrollHeight: list.scrollHeight,
        clientHeight: list.clientHeight,
        listScrollWidth: list.scrollWidth,
        listClientWidth: list.clientWidth,
        pageWidth: document.documentElement.scrollWidth,
        lastShown: last.bottom <= inList.bottom + 1 && last.top >= inList.top - 1,
      };
    });
    const seen = JSON.stringify(layout);
    assert.equal(layout.items, count, seen);
    // The list scrolls inside itself: its height stays within the screen.
    assert.ok(layout.scrollHeight > layout.clientHeight, `the list does not scroll: ${seen}`);
    assert.ok(layout.list.height < viewport.height / 2 + 50, `the list grows the page: ${seen}`);
    // The newest message is the one in view (the list follows new messages).
    assert.ok(layout.lastShown, `the newest message is out of view: ${seen}`);
    // A margin on both sides, for the card and the list; nothing wider than the screen.
    for (const [name, box] of [['main', layout.main], ['the list', layout.list]]) {
      assert.ok(box.left > 0, `${name} touches the left edge: ${seen}`);
      assert.ok(box.right < viewport.width, `${name} touches the right edge: ${seen}`);
    }
    assert.ok(layout.pageWidth <= viewport.width, `the page scrolls sideways: ${seen}`);
    // Long messages wrap instead of widening the list.
    assert.ok(layout.listScrollWidth <= layout.listClientWidth, `a message does not wrap: ${seen}`);

    const file = path.join(os.tmpdir(), 'signalhub-web-signal-390px.png');
    await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  });
});
