// Interop suite: the stock iii Node SDK (iii-sdk 0.22.1) and the C++ test peer against the
// shmchan engine.
//
//   node tests/interop/run.mjs --shmchan build/tools/shmchan --peer build/tests/shmchan_test_peer
//        [--only SUBSTRING] [--verbose]
//
// Starts its own engine (engine --listen 127.0.0.1:0, URL parsed from stdout), then runs each
// scenario file as its own Node process (in its own process group, under a timeout), one after
// the other. A scenario prints "PASS <name>" or "FAIL <name>: <why>" and exits 0 or 1. Every
// process started here is killed by pid (scenario process groups by their group id) before
// exiting; nothing is ever killed by name. The last line is "N passed, M failed"; the exit code
// is non-zero when anything failed.
//
// Scenarios (one file each; lib.mjs holds the shared helpers):
//   s1_seed         the seed example: seed_worker.mjs (files::process) + seed_caller.mjs
//   s2_bulk         256 MiB Node writer -> C++ reader and C++ writer -> Node reader, SHA-256,
//                   throughput printed (informative); the C++ peer attaches through shm
//   s3_order        text messages interleaved with binary chunks, exact order, both ways
//   s4_writer_ref   a writer ref in a payload: the callee (reply_worker.mjs) streams the reply
//   s5_buffer_one   buffer_size 1: many frames; reader first; writer done before the reader
//   s6_refusals     wrong key (404), wrong direction (403), second reader / writer claim
//   s7_abort        C++ writer aborts: what a stock Node reader sees; close 4000 on a raw socket
//   s8_frames       C++ writer with frames: a stock Node reader gets each meta as a text message
//                   just before the frame's bytes
// Then s1 and s3 again over wss://: a second engine with a certificate from a CA this run makes
// (testkit/sh/tls_certs.sh), which the Node processes trust through NODE_EXTRA_CA_CERTS.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  HERE, parseArgs, startEngine, spawnChild, killAllChildren, engineStatus, withTimeout,
} from './lib.mjs';

// [file, timeout in ms]. The budget of the whole suite (ctest: 600 s) is the sum at worst.
const SCENARIOS = [
  ['s1_seed.mjs', 60_000],
  ['s2_bulk.mjs', 240_000],
  ['s3_order.mjs', 60_000],
  ['s4_writer_ref.mjs', 60_000],
  ['s5_buffer_one.mjs', 60_000],
  ['s6_refusals.mjs', 60_000],
  ['s7_abort.mjs', 60_000],
  ['s8_frames.mjs', 60_000],
];
const TLS_SCENARIOS = [
  ['s1_seed.mjs', 60_000],
  ['s3_order.mjs', 60_000],
];

const args = parseArgs();
if (typeof args.shmchan !== 'string' || typeof args.peer !== 'string') {
  console.error('usage: node run.mjs --shmchan PATH --peer PATH [--only SUBSTRING] [--verbose]');
  process.exit(2);
}
for (const [flag, p] of [['--shmchan', args.shmchan], ['--peer', args.peer]]) {
  if (!fs.existsSync(p)) {
    console.error(`${flag} ${p}: no such file`);
    process.exit(2);
  }
}
if (!fs.existsSync(path.join(HERE, 'node_modules', 'iii-sdk'))) {
  console.error(`iii-sdk is not installed: run "npm ci" in ${HERE}`);
  process.exit(2);
}
process.env.OTEL_ENABLED = 'false';
// Scenarios list the shm segments of the channels they create here (lib.mjs newChannel).
const segmentList = path.join(os.tmpdir(), `shmchan-interop-${process.pid}-segments`);
fs.writeFileSync(segmentList, '');
process.env.SHMCHAN_INTEROP_SEGMENTS = segmentList;

const results = [];
let engine = null;
let tlsEngine = null;
const groups = new Set(); // process groups of running scenarios

function killGroup(pgid) {
  try {
    process.kill(-pgid, 'SIGKILL'); // the scenario's process group: only processes it started
  } catch {
    /* gone already */
  }
}

function cleanupAndExit(code) {
  for (const g of groups) killGroup(g);
  killAllChildren('SIGKILL');
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => cleanupAndExit(130));

async function runScenario(file, timeoutMs, eng = engine, env = {}, suffix = '') {
  const name = file.replace(/\.mjs$/, '');
  console.log(`\n=== ${name}${suffix} (timeout ${timeoutMs / 1000} s)`);
  const t0 = Date.now();
  const child = spawnChild(name, process.execPath, [path.join(HERE, file), '--url', eng.url,
    '--peer', path.resolve(args.peer), '--shmchan', path.resolve(args.shmchan)],
  { detached: true, echo: true, env });
  groups.add(child.pid);
  let info;
  let why = null;
  try {
    info = await withTimeout(child.exitPromise, timeoutMs, `scenario ${name}`);
  } catch (e) {
    why = `${e.message} (killed)`;
    killGroup(child.pid);
    info = await withTimeout(child.exitPromise, 5000, 'killed scenario to exit').catch(() => null);
  }
  killGroup(child.pid); // anything the scenario left behind
  groups.delete(child.pid);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  const passLine = child.lines.find((l) => l === `PASS ${name}`);
  if (!why && info && info.code === 0 && passLine) {
    results.push({ name: name + suffix, ok: true });
    console.log(`--- PASS ${name}${suffix} (${secs} s)`);
    return;
  }
  if (!why) {
    const failLine = [...child.lines].reverse().find((l) => l.startsWith(`FAIL ${name}`));
    why = failLine ? failLine.slice(`FAIL ${name}: `.length)
      : `exited ${JSON.stringify(info)} without a PASS line`;
  }
  const err = child.stderr.trim();
  if (err) console.log(`    stderr of ${name}:\n${err.split('\n').slice(-30).map((l) => '      ' + l).join('\n')}`);
  results.push({ name: name + suffix, ok: false, why });
  console.log(`--- FAIL ${name}${suffix} (${secs} s): ${why}`);
}

try {
  engine = await startEngine(path.resolve(args.shmchan));
  console.log(`engine (pid ${engine.child.pid}) at ${engine.url}`);
  const only = typeof args.only === 'string' ? args.only : null;
  for (const [file, timeoutMs] of SCENARIOS) {
    if (only && !file.includes(only)) continue;
    if (engine.child.exited) {
      results.push({ name: file, ok: false, why: `engine died earlier: ${engine.child.describe()}` });
      continue;
    }
    await runScenario(file, timeoutMs);
  }
  if (!engine.child.exited) {
    try {
      const st = await engineStatus(engine.url);
      console.log(`\nengine status at the end: ${st.workers} workers, ${st.channels} channels`);
    } catch (e) {
      console.log(`\nengine status at the end: unavailable (${e.message})`);
    }
  } else {
    results.push({ name: 'engine', ok: false, why: `the engine exited during the run: ${engine.child.describe()}` });
  }
  // wss://: certificates of this run, an engine serving TLS, Node trusting the run's CA.
  const tlsRuns = TLS_SCENARIOS.filter(([file]) => !only || file.includes(only));
  if (tlsRuns.length) {
    const certs = path.join(os.tmpdir(), `shmchan-interop-${process.pid}-tls`);
    execFileSync('bash', [path.join(HERE, '..', '..', 'testkit', 'sh', 'tls_certs.sh'), certs]);
    tlsEngine = await startEngine(path.resolve(args.shmchan),
      ['--tls-cert', path.join(certs, 'server.pem'), '--tls-key', path.join(certs, 'server.key')]);
    console.log(`\nTLS engine (pid ${tlsEngine.child.pid}) at ${tlsEngine.url}`);
    if (!tlsEngine.url.startsWith('wss://')) throw new Error(`the TLS engine serves ${tlsEngine.url}`);
    const env = { NODE_EXTRA_CA_CERTS: path.join(certs, 'ca.pem'), SHMCHAN_TLS_CA: path.join(certs, 'ca.pem') };
    for (const [file, timeoutMs] of tlsRuns) await runScenario(file, timeoutMs, tlsEngine, env, ' over wss://');
    fs.rmSync(certs, { recursive: true, force: true });
  }
} catch (e) {
  results.push({ name: 'setup', ok: false, why: e.message });
} finally {
  if (tlsEngine) await tlsEngine.child.stop(3000);
  if (engine) {
    const info = await engine.child.stop(3000);
    if (args.verbose || results.some((r) => !r.ok)) {
      const err = engine.child.stderr.trim();
      if (err) console.log(`engine stderr (tail):\n${err.split('\n').slice(-20).join('\n')}`);
    }
    if (info && info.signal && info.signal !== 'SIGTERM')
      console.log(`engine ended with ${JSON.stringify(info)}`);
  }
}

// Segments of this run's channels still in /dev/shm once the engine is gone: a leak (the
// engine finishes the ends nobody took when it stops). A failure of its own; they are removed
// so that failed runs do not fill /dev/shm; only names this run created are touched.
try {
  const segs = [...new Set(fs.readFileSync(segmentList, 'utf8').split('\n').filter(Boolean))];
  const left = segs.filter((seg) => /^\/shmchan-[0-9a-f-]+$/.test(seg) && fs.existsSync(`/dev/shm${seg}`));
  for (const seg of left) fs.rmSync(`/dev/shm${seg}`, { force: true });
  results.push({ name: 'no shm segment left after the engine stopped', ok: left.length === 0,
                 why: `${left.length} left: ${left.join(' ')}` });
  console.log(`\nshm segments: ${segs.length} channels created by the scenarios, ${left.length} left in /dev/shm` +
    (left.length ? ` (removed: ${left.join(' ')})` : ''));
  fs.rmSync(segmentList, { force: true });
} catch (e) {
  console.log(`shm segment check failed: ${e.message}`);
}

const failed = results.filter((r) => !r.ok);
console.log('\nSummary:');
for (const r of results) console.log(`  ${r.ok ? 'PASS' : 'FAIL'} ${r.name}${r.ok ? '' : ': ' + r.why}`);
console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
cleanupAndExit(failed.length || results.length === 0 ? 1 : 0);
