// A real browser (Debian's chromium, driven by playwright-core) subscribes to one channel over
// one transport, the gateway's server-side disconnect cuts it off midway, and the page's client
// must reconnect by itself and resume from its last position.
//
//   node scenario.mjs <sse|poll|proto>
//
// Environment:
//   RT_GATEWAY           the gateway's HTTP/WebSocket origin, e.g. http://127.0.0.1:8080
//   RT_SUBSCRIBER_TOKEN  JWT of the browser's subject (may subscribe to RT_CHANNEL)
//   RT_PUBLISHER_TOKEN   JWT of another subject (may publish to RT_CHANNEL)
//   RT_SUBJECT           the browser's subject (what POST /admin/disconnect closes)
//   RT_CHANNEL           the channel
//   RT_EVENTS            how many events to publish (default 40, at least 4)
//   RT_TIMEOUT_MS        overall bound (default 80000: below BrowserTests' 90 s, above a 45 s cold launch)
//   RT_CHROMIUM          the browser (default /usr/bin/chromium)
//
// Node publishes {"n":i} for i = 1..N over HTTP, ~50 ms apart, once the page is subscribed; after
// the page has N/4 events it calls POST /admin/disconnect?subject=RT_SUBJECT; the last quarter is
// published only once the page has reconnected (bounded), so the resumed stream carries both
// replayed and live events. Then it waits (bounded) for N distinct events.
//
// Prints ONE line of JSON on stdout at the end:
//   {"transport","published":[n..],"received":[n.. in arrival order, duplicates included],
//    "reconnects","resumedWithCursor","errors":[..],"resyncs":[..],"disconnect":{..},
//    "notes":[..], "wire":{..} (sse, poll: what the DevTools protocol saw), ...}
// Exit code: 0 when the scenario ran (the caller asserts on the JSON), 1 when it could not run
// (browser not started, page never subscribed...), 2 when the overall bound ran out. Progress
// goes to stderr. The browser is closed on every path.

import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const started = Date.now();

const transport = process.argv[2];
const gateway = (process.env.RT_GATEWAY ?? '').replace(/\/+$/, '');
const subscriberToken = process.env.RT_SUBSCRIBER_TOKEN ?? '';
const publisherToken = process.env.RT_PUBLISHER_TOKEN ?? '';
const subject = process.env.RT_SUBJECT ?? '';
const channel = process.env.RT_CHANNEL ?? '';
const total = Number.parseInt(process.env.RT_EVENTS ?? '40', 10);
const overallMs = Number.parseInt(process.env.RT_TIMEOUT_MS ?? '80000', 10);
const executablePath = process.env.RT_CHROMIUM ?? '/usr/bin/chromium';

const SPACING_MS = 50;
const SUBSCRIBE_WITHIN_MS = 15_000;
const RECONNECT_WITHIN_MS = 20_000;
const CATCH_UP_WITHIN_MS = 20_000;
const SETTLE_MS = 750;
const HTTP_TIMEOUT_MS = 10_000;

const result = {
  transport,
  published: [],
  received: [],
  reconnects: 0,
  resumedWithCursor: false,
  errors: [],
  resyncs: [],
  disconnect: null,
  notes: [],
  elapsedMs: 0,
};

function log(message) {
  process.stderr.write(`[scenario ${transport ?? '?'} +${((Date.now() - started) / 1000).toFixed(2)}s] ${message}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let browser = null;
let page = null;
let finished = false;

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (b) {
    await Promise.race([b.close().catch((e) => log(`closing the browser: ${e.message}`)), sleep(5_000)]);
  }
}

async function finish(code) {
  if (finished) return;
  finished = true;
  try {
    if (page) {
      try {
        const state = await Promise.race([page.evaluate(() => { if (!window.__rt) return null; window.__rt.stop(); return window.__rt.snapshot(); }), sleep(2_000)]);
        if (state) absorb(state);
      } catch (e) {
        log(`reading the page's state: ${e.message}`);
      }
    }
  } finally {
    await closeBrowser();
    result.elapsedMs = Date.now() - started;
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exitCode = code;
    // Nothing may keep the process alive past this point (sockets, timers).
    setTimeout(() => process.exit(code), 200).unref();
  }
}

function absorb(state) {
  result.received = state.received;
  result.reconnects = state.reconnects;
  result.resumedWithCursor = state.resumedWithCursor || wireResumed;
  if (transport === 'poll') {
    // A poll the browser re-sent by itself is a reconnect the page did not see (watchWire).
    result.pageRetries = state.reconnects;
    result.reconnects = Math.max(state.reconnects, result.wire?.connectionMoves ?? 0);
  }
  result.resyncs = state.resyncs;
  for (const e of state.errors) result.errors.push(`page: ${e}`);
  result.notes.push(...collapse(state.notes).map((n) => `page: ${n}`));
  if (state.closeCodes) result.closeCodes = state.closeCodes;
}

// Runs of the same note as one ("poll failed: Failed to fetch (×73)").
function collapse(notes) {
  const out = [];
  for (const note of notes) {
    const last = out.at(-1);
    if (last && last.note === note) last.count++;
    else out.push({ note, count: 1 });
  }
  return out.map(({ note, count }) => (count > 1 ? `${note} (×${count})` : note));
}

// The overall bound: whatever is still running, report what there is, close the browser, exit 2.
const watchdog = setTimeout(() => {
  result.errors.push(`timeout: the scenario did not finish within ${overallMs} ms`);
  log('overall timeout');
  finish(2);
}, overallMs);
watchdog.unref();

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    result.errors.push(`stopped by ${signal}`);
    finish(3);
  });
}

async function main() {
  if (!['sse', 'poll', 'proto'].includes(transport)) {
    throw new Setup(`usage: node scenario.mjs <sse|poll|proto> (got ${JSON.stringify(transport)})`);
  }
  const missing = Object.entries({ RT_GATEWAY: gateway, RT_SUBSCRIBER_TOKEN: subscriberToken, RT_PUBLISHER_TOKEN: publisherToken, RT_SUBJECT: subject, RT_CHANNEL: channel })
    .filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) throw new Setup(`missing environment: ${missing.join(', ')}`);
  if (!Number.isInteger(total) || total < 4) throw new Setup(`RT_EVENTS must be an integer >= 4 (got ${process.env.RT_EVENTS})`);
  if (!existsSync(executablePath)) throw new Setup(`no browser at ${executablePath} (apt-get install chromium)`);

  log(`launching ${executablePath}`);
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
    // A cold start (the run's first launch, its files no longer in the page cache) took more than
    // 20 s once in CI on this 2-core VM; later launches take 1-2 s.
    timeout: 45_000,
  });
  // The page comes from page.route, which gives it no IP address space: without this grant
  // Chromium's Local Network Access checks refuse its WebSocket to 127.0.0.1.
  const context = await browser.newContext({ permissions: ['local-network-access'] });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => result.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
  page.on('requestfailed', (r) => log(`request failed: ${r.method()} ${redact(r.url())}: ${r.failure()?.errorText}`));
  if (transport !== 'proto') await watchWire(context, page);

  // A page at the gateway's origin that the gateway does not serve: every request it makes is same-origin.
  await page.route(`${gateway}/__test__`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>t</title>' }));
  await page.goto(`${gateway}/__test__`);

  const config = { gateway, token: subscriberToken, channel };
  if (transport === 'proto') {
    await page.addScriptTag({ path: require.resolve('protobufjs/dist/protobuf.min.js') });
    config.proto = await readFile(path.join(here, '..', '..', 'protos', 'realtime', 'v1', 'client.proto'), 'utf8');
  }
  await page.evaluate(PAGE_CLIENTS[transport], config);

  log(`page client started; waiting for the subscription (≤ ${SUBSCRIBE_WITHIN_MS} ms)`);
  if (!(await waitFor(async () => (await state()).subscribed, SUBSCRIBE_WITHIN_MS))) {
    throw new Setup(`the page did not report a subscription within ${SUBSCRIBE_WITHIN_MS} ms`);
  }
  log('subscribed; publishing');

  const quarter = Math.floor(total / 4);
  const holdFrom = total - quarter + 1;
  const disconnected = disconnectAfter(quarter);
  for (let i = 1; i <= total; i++) {
    if (i === holdFrom) {
      // The last quarter goes out once the page has come back: live events after a resume.
      await Promise.race([disconnected, sleep(RECONNECT_WITHIN_MS)]);
      const back = await waitFor(async () => Math.max((await state()).reconnects, result.wire?.connectionMoves ?? 0) >= 1, RECONNECT_WITHIN_MS);
      log(back ? `page reconnected; publishing ${holdFrom}..${total}` : `page did not reconnect within ${RECONNECT_WITHIN_MS} ms; publishing the rest anyway`);
      if (!back) result.notes.push(`no reconnect within ${RECONNECT_WITHIN_MS} ms after the disconnect`);
    }
    if (await publish(i)) result.published.push(i);
    await sleep(SPACING_MS);
  }
  await Promise.race([disconnected, sleep(5_000)]);

  const deadline = Math.min(started + overallMs - 5_000, Date.now() + CATCH_UP_WITHIN_MS);
  log(`published ${result.published.length}/${total}; waiting for every event (until +${((deadline - started) / 1000).toFixed(1)}s)`);
  const all = await waitFor(async () => new Set((await state()).received).size >= total, Math.max(0, deadline - Date.now()));
  if (!all) result.notes.push('not every event arrived before the deadline');
  // Late duplicates would show up now.
  await sleep(SETTLE_MS);
  await finish(0);
}

class Setup extends Error {}

async function state() {
  return page.evaluate(() => window.__rt.snapshot());
}

async function waitFor(condition, withinMs, everyMs = 50) {
  const until = Date.now() + withinMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= until) return false;
    await sleep(everyMs);
  }
}

async function http(method, url, body, headers = {}) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, text };
}

async function publish(n) {
  const url = `${gateway}/v1/channels/${encodeURIComponent(channel)}/events`;
  try {
    const { status, text } = await http('POST', url, { event: 'msg', data: { n } }, { authorization: `Bearer ${publisherToken}` });
    if (status === 200) return true;
    result.errors.push(`publish ${n}: HTTP ${status} ${text.slice(0, 200)}`);
  } catch (e) {
    result.errors.push(`publish ${n}: ${e.message}`);
  }
  return false;
}

// Once the page has `after` distinct events, the gateway closes the subject's connections.
async function disconnectAfter(after) {
  try {
    const reached = await waitFor(async () => new Set((await state()).received).size >= after, overallMs);
    if (!reached || finished) return;
  } catch (e) {
    if (!finished) result.errors.push(`waiting for ${after} events: ${e.message}`);
    return;
  }
  const url = `${gateway}/admin/disconnect?subject=${encodeURIComponent(subject)}`;
  // A stream is open all the time; a long-poll client is between two polls now and then, when
  // there is nothing of it to close: then try again, a few milliseconds later (bounded).
  const attempts = transport === 'poll' ? 40 : 1;
  for (let attempt = 1; attempt <= attempts && !finished; attempt++) {
    try {
      const { status, text } = await http('POST', url);
      let body = null;
      try { body = JSON.parse(text); } catch { /* reported below */ }
      result.disconnect = { status, closed: body?.closed ?? null, attempts: attempt };
      log(`POST /admin/disconnect (attempt ${attempt}): HTTP ${status} ${text.slice(0, 200)}`);
      if (status !== 200) {
        result.errors.push(`admin disconnect: HTTP ${status} ${text.slice(0, 200)}`);
        return;
      }
      if (typeof body?.closed !== 'number') {
        result.errors.push(`admin disconnect: no {"closed":k} in ${text.slice(0, 200)}`);
        return;
      }
      if (body.closed > 0) return;
    } catch (e) {
      result.errors.push(`admin disconnect: ${e.message}`);
      return;
    }
    await sleep(25);
  }
  result.errors.push(`admin disconnect: closed nothing of ${subject} in ${attempts} attempt(s)`);
}

// What the page cannot see, read off the wire through the DevTools protocol:
// - sse: EventSource's own reconnect carries Last-Event-ID. It is in the headers Chromium really
//   sent (requestWillBeSentExtraInfo), not in what playwright-core reports for the request.
// - poll: when the server aborts a held poll, Chromium silently sends the same GET (same cursor)
//   again on a new connection, because it went out on a reused keep-alive connection and got no
//   byte back. The page's fetch never fails, so the move shows only as a poll answered on
//   another connection than the one before.
async function watchWire(context, p) {
  const cdp = await context.newCDPSession(p);
  await cdp.send('Network.enable');
  const urls = new Map();
  const sent = new Map();
  const wire = { sse: [], pollConnections: [], connectionMoves: 0 };
  result.wire = wire;
  const sseRequest = (id) => {
    const url = urls.get(id);
    const headers = sent.get(id);
    if (!url || !headers || !url.includes('/v1/sse?')) return;
    urls.delete(id);
    const name = Object.keys(headers).find((h) => h.toLowerCase() === 'last-event-id');
    wire.sse.push(name ? { lastEventId: headers[name] } : {});
    if (name) wireResumed = true;
  };
  cdp.on('Network.requestWillBeSent', (e) => {
    if (e.request.url.startsWith(`${gateway}/v1/`)) { urls.set(e.requestId, e.request.url); sseRequest(e.requestId); }
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => { sent.set(e.requestId, e.headers); sseRequest(e.requestId); });
  cdp.on('Network.responseReceived', (e) => {
    const url = e.response.url;
    if (!url.startsWith(`${gateway}/v1/poll?`)) return;
    const connection = e.response.connectionId;
    const withCursor = new URL(url).searchParams.has('cursor');
    const previous = wire.pollConnections.at(-1);
    if (previous && previous.connection === connection) {
      previous.polls++;
      return;
    }
    if (previous) {
      wire.connectionMoves++;
      if (withCursor) wireResumed = true;
    }
    // Runs of polls answered on one connection; a new run with a cursor is a resume.
    wire.pollConnections.push({ connection, polls: 1, firstWithCursor: withCursor });
  });
  cdp.on('Network.loadingFinished', (e) => { urls.delete(e.requestId); sent.delete(e.requestId); });
}

let wireResumed = false;

function redact(url) {
  return url.replace(/access_token=[^&]*/g, 'access_token=…');
}

// ---- the clients, as they run in the page -------------------------------------------------------
// Each sets up window.__rt with snapshot() (a plain copy of its state) and stop().

function newState() {
  // Stringified into the page by each client below (they cannot close over Node's scope).
  return {
    subscribed: false,
    received: [],
    reconnects: 0,
    resumedWithCursor: false,
    errors: [],
    resyncs: [],
    notes: [],
  };
}

const PAGE_CLIENTS = {
  sse: new Function('config', `
    const s = (${newState.toString()})();
    let opens = 0;
    const url = config.gateway + '/v1/sse?channels=' + encodeURIComponent(config.channel) + '&access_token=' + encodeURIComponent(config.token);
    const source = new EventSource(url);
    source.onopen = () => { opens++; s.reconnects = Math.max(0, opens - 1); };
    source.onerror = () => { s.notes.push('error event, readyState ' + source.readyState); };
    source.onmessage = (m) => {
      let frame;
      try { frame = JSON.parse(m.data); } catch (e) { s.errors.push('not JSON: ' + m.data.slice(0, 200)); return; }
      switch (frame.type) {
        // docs/protocol.md: connected, then per channel the replayed events and ok (with the
        // channel's position, so with an id), then events.
        case 'connected': break;
        case 'ok':
          if (frame.channel !== config.channel) { s.errors.push('ok for another channel: ' + frame.channel); break; }
          if (!m.lastEventId) s.errors.push('ok without an id');
          s.subscribed = true;
          break;
        case 'event':
          if (frame.channel !== config.channel) { s.errors.push('event of another channel: ' + frame.channel); break; }
          if (!frame.data || typeof frame.data.n !== 'number') { s.errors.push('event without data.n: ' + m.data.slice(0, 200)); break; }
          if (!m.lastEventId) s.errors.push('event ' + frame.data.n + ' without an id');
          s.received.push(frame.data.n);
          break;
        case 'resync': s.resyncs.push(frame.reason || '?'); break;
        case 'reconnect': s.notes.push('reconnect frame: ' + (frame.reason || '')); break;
        case 'error': s.errors.push('error frame: ' + (frame.code || '') + ' ' + (frame.message || '')); break;
        default: s.notes.push('frame ' + frame.type);
      }
    };
    window.__rt = {
      snapshot: () => JSON.parse(JSON.stringify(s)),
      stop: () => source.close(),
    };
  `),

  poll: new Function('config', `
    const s = (${newState.toString()})();
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    let stopped = false;
    let cursor = null;
    let failed = false;
    const controller = new AbortController();
    const base = config.gateway + '/v1/poll?access_token=' + encodeURIComponent(config.token);
    (async () => {
      while (!stopped) {
        const retryWithCursor = failed && cursor !== null;
        const url = cursor === null
          ? base + '&channels=' + encodeURIComponent(config.channel)
          : base + '&cursor=' + encodeURIComponent(cursor);
        let response;
        try {
          response = await fetch(url, { cache: 'no-store', signal: controller.signal });
        } catch (e) {
          if (stopped) return;
          s.reconnects++; failed = true;
          s.notes.push('poll failed: ' + e.message);
          await sleep(200);
          continue;
        }
        if (response.status === 204) { failed = false; if (retryWithCursor) s.resumedWithCursor = true; continue; }
        if (response.status !== 200) {
          const text = await response.text().catch(() => '');
          if (response.status >= 500) { s.reconnects++; failed = true; s.notes.push('poll HTTP ' + response.status); }
          else s.errors.push('poll HTTP ' + response.status + ' ' + text.slice(0, 200));
          await sleep(200);
          continue;
        }
        let body;
        try { body = await response.json(); } catch (e) {
          // The body was cut off (the disconnect) or is not JSON.
          if (stopped) return;
          s.reconnects++; failed = true;
          s.notes.push('poll body unreadable: ' + e.message);
          await sleep(200);
          continue;
        }
        if (retryWithCursor) s.resumedWithCursor = true;
        failed = false;
        if (typeof body.cursor !== 'string' || !Array.isArray(body.events)) { s.errors.push('poll body without cursor/events: ' + JSON.stringify(body).slice(0, 200)); await sleep(200); continue; }
        for (const frame of body.events) {
          if (frame.type === 'event') {
            if (frame.channel !== config.channel) { s.errors.push('event of another channel: ' + frame.channel); continue; }
            if (!frame.data || typeof frame.data.n !== 'number') { s.errors.push('event without data.n: ' + JSON.stringify(frame).slice(0, 200)); continue; }
            s.received.push(frame.data.n);
          } else if (frame.type === 'resync') s.resyncs.push(frame.reason || '?');
          else if (frame.type === 'error') s.errors.push('error frame: ' + (frame.code || '') + ' ' + (frame.message || ''));
          else s.notes.push('frame ' + frame.type);
        }
        cursor = body.cursor;
        s.subscribed = true;
      }
    })().catch((e) => s.errors.push('poll loop: ' + e.message));
    window.__rt = {
      snapshot: () => JSON.parse(JSON.stringify(s)),
      stop: () => { stopped = true; controller.abort(); },
    };
  `),

  proto: new Function('config', `
    const s = (${newState.toString()})();
    s.closeCodes = [];
    const root = protobuf.parse(config.proto).root;
    const ClientMessage = root.lookupType('realtime.v1.client.ClientMessage');
    const ServerMessage = root.lookupType('realtime.v1.client.ServerMessage');
    const num = (v) => (v == null ? 0 : typeof v === 'number' ? v : typeof v.toNumber === 'function' ? v.toNumber() : Number(v));
    const decoder = new TextDecoder();
    const url = config.gateway.replace(/^http/, 'ws') + '/ws?access_token=' + encodeURIComponent(config.token);
    let last = null;
    let stopped = false;
    let ws = null;
    let attempt = 0;
    function send(message) {
      const error = ClientMessage.verify(message);
      if (error) { s.errors.push('ClientMessage: ' + error); return; }
      ws.send(ClientMessage.encode(ClientMessage.fromObject(message)).finish());
    }
    function connect() {
      attempt++;
      const id = 's' + attempt;
      ws = new WebSocket(url, 'realtime.v1.proto');
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        if (ws.protocol !== 'realtime.v1.proto') s.errors.push('subprotocol ' + JSON.stringify(ws.protocol) + ', not realtime.v1.proto');
        const subscribe = { channel: config.channel };
        if (last) { subscribe.since = { epoch: last.epoch, seq: last.seq }; s.resumedWithCursor = true; }
        send({ id, subscribe });
      };
      ws.onmessage = (m) => {
        if (!(m.data instanceof ArrayBuffer)) { s.errors.push('a text frame: ' + String(m.data).slice(0, 200)); return; }
        let msg;
        try { msg = ServerMessage.decode(new Uint8Array(m.data)); } catch (e) { s.errors.push('undecodable frame: ' + e.message); return; }
        if (msg.ok) {
          if (msg.id === id) s.subscribed = true;
        } else if (msg.event) {
          const e = msg.event;
          if (e.channel !== config.channel) { s.errors.push('event of another channel: ' + e.channel); return; }
          if (e.contentType !== 'application/json') s.errors.push('contentType ' + JSON.stringify(e.contentType));
          let data;
          try { data = JSON.parse(decoder.decode(e.data)); } catch (x) { s.errors.push('event data is not JSON: ' + x.message); return; }
          if (!data || typeof data.n !== 'number') { s.errors.push('event without data.n'); return; }
          if (!e.position || !e.position.epoch) s.errors.push('event ' + data.n + ' without a position');
          else last = { epoch: e.position.epoch, seq: num(e.position.seq) };
          s.received.push(data.n);
        } else if (msg.resync) {
          s.resyncs.push(msg.resync.reason || '?');
          if (msg.resync.position && msg.resync.position.epoch) last = { epoch: msg.resync.position.epoch, seq: num(msg.resync.position.seq) };
        } else if (msg.error) {
          s.errors.push('error: ' + msg.error.code + ' ' + msg.error.message);
        } else if (msg.reconnect) {
          s.notes.push('reconnect: ' + msg.reconnect.reason);
        } else if (!msg.connected && !msg.pong && !msg.ack) {
          s.notes.push('unknown server message');
        }
      };
      ws.onclose = (c) => {
        s.closeCodes.push(c.code);
        if (stopped) return;
        s.reconnects++;
        setTimeout(connect, 200);
      };
    }
    connect();
    window.__rt = {
      snapshot: () => JSON.parse(JSON.stringify(s)),
      stop: () => { stopped = true; if (ws) ws.close(1000); },
    };
  `),
};

main().catch(async (e) => {
  // Once finishing (the overall bound), the page going away under main() is no news.
  if (finished) return;
  const setup = e instanceof Setup;
  result.errors.push(setup ? e.message : `scenario: ${e.stack ?? e}`);
  log(setup ? e.message : `failed: ${e.stack ?? e}`);
  await finish(1);
});
