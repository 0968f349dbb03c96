// Shared helpers of the interop suite: arguments, child processes that are tracked and always
// killed (by pid, never by name), the engine, timeouts, hashing, temp files, the C++ peer's
// test pattern, and small stream utilities around the stock iii-sdk classes.
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StringDecoder } from 'node:string_decoder';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const MiB = 1024 * 1024;

// --- arguments ---------------------------------------------------------------------------------
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else {
      out[key] = next;
      ++i;
    }
  }
  return out;
}

// --- timeouts ----------------------------------------------------------------------------------
export class TimeoutError extends Error {}

// Resolves or rejects as `promise` does, or rejects with "timed out after N ms: WHAT".
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `cond` (sync or async) until it is truthy; returns its value.
export async function waitFor(cond, ms, what, every = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new TimeoutError(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// --- assertions --------------------------------------------------------------------------------
export function check(cond, message) {
  if (!cond) throw new Error(message);
}
export function checkEqual(actual, expected, what) {
  if (actual !== expected)
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

// --- child processes ---------------------------------------------------------------------------
const children = new Set();

// A child process whose stdout is split into lines, so a test can wait for one of them.
export class Child {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.lines = [];
    this.stderr = '';
    this.exited = false;
    this.exitInfo = null;
    this.waiters = new Set();
    this.echo = opts.echo ?? false;
    this.proc = spawn(cmd, args, {
      cwd: opts.cwd ?? HERE,
      env: { ...process.env, OTEL_ENABLED: 'false', ...(opts.env ?? {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: opts.detached ?? false,
    });
    this.pid = this.proc.pid;
    children.add(this);
    const dec = new StringDecoder('utf8');
    let partial = '';
    const onText = (text) => {
      partial += text;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        this.lines.push(line);
        if (this.echo) console.log(`    [${this.name}] ${line.length > 200 ? line.slice(0, 200) + '…' : line}`);
        for (const w of this.waiters) w.poll();
      }
    };
    this.proc.stdout.on('data', (d) => onText(dec.write(d)));
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
      if (this.stderr.length > 64 * 1024) this.stderr = this.stderr.slice(-32 * 1024);
    });
    this.proc.stdin.on('error', () => {});
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('error', (err) => {
        this.spawnError = err;
        this.exited = true;
        this.exitInfo = { code: null, signal: null, error: err.message };
        children.delete(this);
        for (const w of this.waiters) w.poll();
        resolve(this.exitInfo);
      });
      this.proc.on('close', (code, signal) => {
        if (partial) {
          this.lines.push(partial);
          partial = '';
        }
        this.exited = true;
        this.exitInfo = this.exitInfo ?? { code, signal };
        children.delete(this);
        for (const w of this.waiters) w.poll();
        resolve(this.exitInfo);
      });
    });
  }

  describe() {
    const err = this.stderr.trim();
    const tail = err ? `; stderr: ${err.slice(-600)}` : '';
    const out = this.lines.length ? `; stdout tail: ${JSON.stringify(this.lines.slice(-5))}` : '';
    const ex = this.exited ? `; exited ${JSON.stringify(this.exitInfo)}` : '';
    return `${this.name} (pid ${this.pid})${ex}${out}${tail}`;
  }

  // The first stdout line (from index `from`) matching `re`; rejects if the process exits
  // first or the time runs out. Returns the RegExp match.
  waitLine(re, ms, what = `a line matching ${re}`, from = 0) {
    return new Promise((resolve, reject) => {
      let i = from;
      const w = {
        poll: () => {
          for (; i < this.lines.length; ++i) {
            const m = this.lines[i].match(re);
            if (m) {
              finish();
              return resolve(m);
            }
          }
          if (this.exited) {
            finish();
            reject(new Error(`${this.name} exited before printing ${what}: ${this.describe()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new TimeoutError(`timed out after ${ms} ms waiting for ${what} from ${this.describe()}`));
      }, ms);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
      w.poll();
    });
  }

  // Waits for the exit; kills the process (SIGKILL) and rejects when it takes longer than `ms`.
  async waitExit(ms, what = 'exit') {
    try {
      return await withTimeout(this.exitPromise, ms, `${this.name} to ${what}`);
    } catch (e) {
      this.kill('SIGKILL');
      throw new Error(`${e.message}: ${this.describe()}`);
    }
  }

  kill(signal = 'SIGTERM') {
    if (this.exited) return;
    try {
      this.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }

  // SIGTERM, then SIGKILL after `graceMs`.
  async stop(graceMs = 2000) {
    if (this.exited) return this.exitInfo;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const info = await this.exitPromise;
    clearTimeout(timer);
    return info;
  }
}

export function spawnChild(name, cmd, args, opts) {
  return new Child(name, cmd, args, opts);
}

export function liveChildren() {
  return [...children];
}

// Kills every child this process started and that is still running (by pid).
export function killAllChildren(signal = 'SIGKILL') {
  for (const c of children) c.kill(signal);
}

// --- temp files --------------------------------------------------------------------------------
const tempFiles = new Set();
export function tempPath(tag) {
  const p = path.join(os.tmpdir(), `shmchan-interop-${process.pid}-${tag}-${randomUUID().slice(0, 8)}`);
  tempFiles.add(p);
  return p;
}
export function removeTempFiles() {
  for (const p of tempFiles) {
    try {
      fs.rmSync(p, { force: true });
    } catch {
      /* best effort */
    }
  }
  tempFiles.clear();
}

process.on('exit', () => {
  killAllChildren('SIGKILL');
  removeTempFiles();
});

// --- hashing -----------------------------------------------------------------------------------
export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}
export async function sha256File(file) {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: MiB })) {
    h.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: h.digest('hex'), bytes };
}

// --- the C++ peer's pattern (include/shmchan/checksum.hpp, fill_pattern) -------------------------
const M64 = (1n << 64n) - 1n;
function patternWord(i) {
  let x = ((i + 1n) * 0x9e3779b97f4a7c15n) & M64;
  x ^= x >> 31n;
  return (x * 0xd6e8feb86659fd93n) & M64;
}
// Bytes [offset, offset + len) of the stream the C++ peer writes.
export function fillPattern(len, offset = 0) {
  const out = Buffer.alloc(len);
  let pos = offset;
  let i = 0;
  while (i < len) {
    const wordIndex = BigInt(Math.floor(pos / 8));
    const w = patternWord(wordIndex);
    let b = pos % 8;
    for (; b < 8 && i < len; ++b, ++i, ++pos) out[i] = Number((w >> BigInt(8 * b)) & 0xffn);
  }
  return out;
}

// --- engine ------------------------------------------------------------------------------------
// Starts `shmchan engine --listen 127.0.0.1:0` and parses its URL from stdout.
export async function startEngine(shmchan, extraArgs = []) {
  const child = spawnChild('engine', shmchan, ['engine', '--listen', '127.0.0.1:0', ...extraArgs]);
  const m = await child.waitLine(/listening on (wss?:\/\/\S+)/, 15000, 'the "listening on" line');
  return { url: m[1], child };
}

export function httpBase(wsUrl) {
  return wsUrl.replace(/^ws/, 'http').replace(/\/$/, '');
}

export async function engineStatus(url) {
  const res = await withTimeout(fetch(`${httpBase(url)}/status`), 5000, 'GET /status');
  if (!res.ok) throw new Error(`GET /status answered ${res.status}`);
  return res.json();
}

// Waits until some worker has registered `fid` with the engine (GET /status lists it).
export async function waitForFunction(url, fid, ms = 15000) {
  await waitFor(async () => (await engineStatus(url)).functions.includes(fid), ms, `${fid} to be registered`, 50);
}

// --- the SDK -----------------------------------------------------------------------------------
// The `ws` package (a dependency of iii-sdk): from this directory's node_modules, else from
// next to iii-sdk. Returns { WebSocket } or { missing: reason }.
export async function importWs() {
  const reasons = [];
  try {
    return { WebSocket: (await import('ws')).WebSocket };
  } catch (e) {
    reasons.push(`import('ws'): ${e.message}`);
  }
  try {
    const { createRequire } = await import('node:module');
    const sdkRequire = createRequire(createRequire(import.meta.url).resolve('iii-sdk'));
    return { WebSocket: sdkRequire('ws').WebSocket };
  } catch (e) {
    reasons.push(`ws next to iii-sdk: ${e.message}`);
  }
  return { missing: reasons.join('; ') };
}
export const WS_OPEN = 1; // WebSocket readyState values
export const WS_CLOSED = 3;

export async function connectSdk(url, workerName) {
  const { registerWorker } = await import('iii-sdk');
  return registerWorker(url, {
    workerName,
    enableMetricsReporting: false,
    otel: { enabled: false },
  });
}

// createChannel(iii, bufferSize) under a timeout. The segment named in the ref's shm extension
// is appended to $SHMCHAN_INTEROP_SEGMENTS (set by run.mjs), so that the runner can remove,
// after the engine has stopped, any segment of this run that nobody finished (it reports them).
export async function newChannel(iii, bufferSize) {
  const { createChannel } = await import('iii-sdk/helpers');
  const ch = await withTimeout(createChannel(iii, bufferSize), 10000,
    `createChannel(iii${bufferSize === undefined ? '' : `, ${bufferSize}`})`);
  const seg = ch.readerRef?.shm?.segment;
  if (process.env.SHMCHAN_INTEROP_SEGMENTS && typeof seg === 'string')
    fs.appendFileSync(process.env.SHMCHAN_INTEROP_SEGMENTS, `${seg}\n`);
  return ch;
}

// Writes one buffer and waits for its callback (so that a following sendMessage cannot
// overtake it: sendMessage bypasses the Writable's queue).
export function writeAwait(stream, buf) {
  return new Promise((resolve, reject) => {
    stream.write(buf, (err) => (err ? reject(err) : resolve()));
  });
}

// Writes with backpressure (waits for 'drain'); rejects on a stream error.
export async function writeWithDrain(stream, buf) {
  if (stream.destroyed) throw new Error('writer stream was destroyed');
  if (stream.write(buf)) return;
  await new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (e) => {
      cleanup();
      reject(e);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('writer stream closed while writing'));
    };
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

// Ends a ChannelWriter's stream and resolves on 'close' (the SDK destroys the stream after its
// socket closed); rejects on 'error'.
export function endWriter(stream, buf) {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.once('close', resolve);
    if (buf) stream.end(buf);
    else stream.end();
  });
}

// Consumes a Readable in flowing mode: byte count, SHA-256, optionally the chunks.
// Resolves at 'end'; rejects on 'error'. `onChunk` sees each chunk as it arrives.
export function consume(stream, { keep = false, onChunk } = {}) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const chunks = [];
    let bytes = 0;
    let first = null;
    stream.on('data', (c) => {
      if (first === null) first = Date.now();
      bytes += c.length;
      h.update(c);
      if (keep) chunks.push(c);
      if (onChunk) onChunk(c);
    });
    stream.once('end', () => resolve({ bytes, sha256: h.digest('hex'), chunks, first }));
    stream.once('error', reject);
  });
}

// Decimal megabytes (10^6 bytes) per second.
export function mbps(bytes, ms) {
  return (bytes / 1e6 / (ms / 1000)).toFixed(1);
}

// --- scenario harness --------------------------------------------------------------------------
// Runs one scenario: prints "PASS <name>" or "FAIL <name>: <why>" and exits 0 or 1, after
// killing every child it started and deleting its temp files.
export async function scenario(name, fn) {
  const args = parseArgs();
  if (!args.url || !args.peer) {
    console.error(`usage: node ${path.basename(process.argv[1])} --url ws://HOST:PORT --peer PATH`);
    process.exit(2);
  }
  const failures = [];
  const ctx = {
    url: args.url,
    peer: args.peer,
    args,
    log: (...a) => console.log('   ', ...a),
    // A named part of the scenario: a failure is recorded and the next part still runs.
    async part(partName, fn, ms = 60000) {
      try {
        await withTimeout(fn(), ms, partName);
        console.log(`    ok   ${partName}`);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        console.log(`    FAIL ${partName}: ${why}`);
        failures.push(`${partName}: ${why}`);
      }
    },
  };
  const fail = (why) => {
    console.log(`FAIL ${name}: ${why}`);
    killAllChildren('SIGKILL');
    removeTempFiles();
    process.exit(1);
  };
  process.on('uncaughtException', (e) => fail(`uncaught exception: ${e?.stack ?? e}`));
  process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${e?.stack ?? e}`));
  try {
    await fn(ctx);
    if (failures.length) throw new Error(failures.join(' | '));
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
    return;
  }
  console.log(`PASS ${name}`);
  killAllChildren('SIGKILL');
  removeTempFiles();
  process.exit(0);
}

// The C++ peer; SHMCHAN_TRANSPORT=shm so that it must attach through the ref's shm extension.
export function spawnPeer(ctx, name, args, opts = {}) {
  return spawnChild(name, ctx.peer, args, {
    ...opts,
    env: { SHMCHAN_TRANSPORT: 'shm', ...(opts.env ?? {}) },
  });
}

// A C++ reader's "ERR ..." line, with a diagnosis when it is the known engine defect: the stock
// Node writer ends a stream with ws.close(1000, "stream_complete") and, at once, its Writable's
// autoDestroy terminate()s the socket; the engine reads the 1000 close frame but its close
// echo / teardown then fails (ECONNRESET / ENOTCONN), and socket_to_ring::on_frame
// (src/engine/engine.cpp) aborts the ring with "socket writer disconnected: ..." instead of
// closing it cleanly.
export function explainReaderError(line, what = 'C++ reader') {
  if (/^ERR aborted \d+ .*socket writer disconnected/.test(line))
    return `ENGINE BUG: a stock Node writer's clean end (close 1000 "stream_complete", then the ` +
      `SDK's terminate()) reached the ${what} as an abort: "${line}". socket_to_ring::on_frame in ` +
      `src/engine/engine.cpp treats the failed close teardown as a disconnect instead of ` +
      `honouring the 1000 close frame it already received (ws.reason().code == 1000).`;
  return `${what} failed: ${line}`;
}
