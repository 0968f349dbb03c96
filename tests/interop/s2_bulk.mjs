// Scenario 2: 256 MiB each way between the stock Node SDK and the C++ peer, SHA-256 equal.
// Node creates the channel through the engine (createChannel); the C++ peer gets the ref as a
// JSON argument and attaches through shared memory (the ref's "shm" extension;
// SHMCHAN_TRANSPORT=shm makes any other path an error). Node's end goes through the engine's
// channel socket, which the engine bridges onto the same ring.
//   a) Node writer (random data, hashed as written) -> peer read-file -> sha256(file)
//   b) random file (hashed as written) -> peer write-file -> Node reader (hashed as read)
// Throughput is printed, never asserted.
import fs from 'node:fs';
import { createHash, randomFillSync } from 'node:crypto';
import {
  scenario, connectSdk, newChannel, spawnPeer, tempPath, sha256File, writeWithDrain, endWriter, consume,
  withTimeout, check, checkEqual, mbps, MiB, explainReaderError,
} from './lib.mjs';

const TOTAL = Number(process.env.SHMCHAN_INTEROP_BULK_MIB ?? 256) * MiB;
const PIECE = MiB;

await scenario('s2_bulk', async (ctx) => {
  const iii = await connectSdk(ctx.url, 's2-bulk');

  await ctx.part(`a) Node writer -> C++ reader, ${TOTAL / MiB} MiB`, async () => {
    const channel = await newChannel(iii);
    check(channel.readerRef.shm && typeof channel.readerRef.shm.segment === 'string',
      `the reader ref from engine::channels::create has no shm extension: ${JSON.stringify(channel.readerRef)}`);
    const out = tempPath('node-to-cpp');
    const peer = spawnPeer(ctx, 'peer read-file', ['read-file', JSON.stringify(channel.readerRef), out]);
    const writer = channel.writer.stream;
    let writeError = null;
    writer.on('error', (e) => { writeError = e; });
    // Random data, generated and hashed before the clock starts.
    const h = createHash('sha256');
    const pieces = [];
    for (let off = 0; off < TOTAL; off += PIECE) {
      const buf = randomFillSync(Buffer.allocUnsafe(Math.min(PIECE, TOTAL - off)));
      h.update(buf);
      pieces.push(buf);
    }
    const t0 = Date.now();
    for (const buf of pieces) await writeWithDrain(writer, buf);
    await endWriter(writer);
    pieces.length = 0;
    check(!writeError, `Node writer stream error: ${writeError?.message}`);
    const m = await peer.waitLine(/^(END|ERR) (.*)$/, 60000, 'END from the C++ reader');
    const ms = Date.now() - t0;
    const want = h.digest('hex');
    const got = await sha256File(out);
    const dataNote = got.bytes === TOTAL && got.sha256 === want
      ? ` (all ${TOTAL} bytes arrived intact: SHA-256 equal)` : ` (file: ${got.bytes} bytes, SHA-256 ${got.sha256 === want ? 'equal' : 'differs'})`;
    ctx.log(`Node writer -> C++ reader: ${TOTAL / MiB} MiB in ${ms} ms = ${mbps(TOTAL, ms)} MB/s (C++ writing to a file)`);
    check(m[1] === 'END', explainReaderError(m[0]) + dataNote);
    checkEqual(Number(m[2]), TOTAL, 'bytes the C++ reader received');
    checkEqual(got.bytes, TOTAL, 'size of the file the C++ reader wrote');
    checkEqual(got.sha256, want, 'SHA-256 of Node-written data vs the C++ reader\'s file');
    await peer.waitExit(10000);
    fs.rmSync(out, { force: true });
    ctx.log(`  sha256 ${want.slice(0, 16)}… equal`);
  }, 180000);

  await ctx.part(`b) C++ writer -> Node reader, ${TOTAL / MiB} MiB`, async () => {
    const input = tempPath('cpp-to-node');
    const h = createHash('sha256');
    const fd = fs.openSync(input, 'w');
    for (let off = 0; off < TOTAL; off += PIECE) {
      const buf = randomFillSync(Buffer.allocUnsafe(Math.min(PIECE, TOTAL - off)));
      h.update(buf);
      fs.writeSync(fd, buf);
    }
    fs.closeSync(fd);
    const want = h.digest('hex');

    const channel = await newChannel(iii);
    check(channel.writerRef.shm, `the writer ref has no shm extension: ${JSON.stringify(channel.writerRef)}`);
    const t0 = Date.now();
    const reading = consume(channel.reader.stream);
    const peer = spawnPeer(ctx, 'peer write-file', ['write-file', JSON.stringify(channel.writerRef), input]);
    const got = await withTimeout(reading, 150000, 'the Node reader to read to the end');
    const ms = Date.now() - t0;
    ctx.log(`C++ writer -> Node reader: ${TOTAL / MiB} MiB in ${ms} ms = ${mbps(TOTAL, ms)} MB/s (Node hashing as it reads)`);
    const m = await peer.waitLine(/^(DRAINED|ERR.*)$/, 30000, 'DRAINED from the C++ writer');
    check(m[1] === 'DRAINED', `C++ writer failed: ${m[0]}`);
    check(peer.lines.includes('CLOSED'), `C++ writer did not print CLOSED: ${peer.describe()}`);
    checkEqual(got.bytes, TOTAL, 'bytes the Node reader received');
    checkEqual(got.sha256, want, 'SHA-256 of the file vs what the Node reader received');
    await peer.waitExit(10000);
    fs.rmSync(input, { force: true });
    ctx.log(`  sha256 ${want.slice(0, 16)}… equal`);
  }, 180000);

  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
});
