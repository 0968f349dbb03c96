// Scenario 5: channels created with buffer_size 1 (createChannel(iii, 1)).
//   a) the reader connects first (its socket is open before the writer writes); a stream of
//      many 64 KiB frames still arrives complete (SHA-256 equal).
//   b) the writer finishes (end, and its socket has closed) before the reader connects: the
//      engine must hold the data (one 64 KiB frame, what buffer_size 1 allows) in the ring;
//      a stock Node reader that connects afterwards gets all of it.
//   c) as b), with the C++ peer as the late reader (attached through shared memory), which
//      can also tell a clean end from an abort.
import { randomBytes } from 'node:crypto';
import {
  scenario, connectSdk, newChannel, WS_OPEN, WS_CLOSED, spawnPeer, writeWithDrain, endWriter, consume, withTimeout, waitFor,
  check, checkEqual, sha256, sleep, tempPath, sha256File, explainReaderError, MiB,
} from './lib.mjs';

const FRAME = 64 * 1024;

await scenario('s5_buffer_one', async (ctx) => {
  const iii = await connectSdk(ctx.url, 's5-buffer-one');

  await ctx.part('a) buffer_size 1, reader connected first, 512 frames of 64 KiB', async () => {
    const channel = await newChannel(iii, 1);
    const reading = consume(channel.reader.stream);
    // The SDK reader connects lazily on the first read; wait until its socket is open.
    await waitFor(() => channel.reader.ws && channel.reader.ws.readyState === WS_OPEN, 10000,
      'the reader socket to open');
    const frames = 512;
    const all = randomBytes(frames * FRAME);
    const w = channel.writer.stream;
    let writeError = null;
    w.on('error', (e) => { writeError = e; });
    for (let i = 0; i < frames; ++i) await writeWithDrain(w, all.subarray(i * FRAME, (i + 1) * FRAME));
    await endWriter(w);
    check(!writeError, `writer error: ${writeError?.message}`);
    const got = await withTimeout(reading, 30000, 'the reader to reach the end');
    checkEqual(got.bytes, all.length, 'bytes received');
    checkEqual(got.sha256, sha256(all), 'SHA-256 of the received stream');
    ctx.log(`${frames} frames (${all.length / MiB} MiB) arrived complete through a buffer_size 1 channel`);
  });

  // Ends the writer with `data` and waits until its socket has closed (the engine answered
  // the close), then a little more, before anyone reads.
  async function writeAndFinish(channel, data) {
    const w = channel.writer.stream;
    let writeError = null;
    w.on('error', (e) => { writeError = e; });
    const finished = endWriter(w, data);
    const ws = channel.writer.ws; // end(data) opened the writer's socket
    check(ws, 'the writer opened no socket on end(data)');
    const socketClosed = new Promise((resolve) => {
      if (ws.readyState === WS_CLOSED) resolve();
      else ws.once('close', resolve);
    });
    await withTimeout(Promise.all([finished, socketClosed]), 10000,
      'the writer to end and its socket to close, before any reader');
    check(!writeError, `writer error: ${writeError?.message}`);
    await sleep(300);
  }

  await ctx.part('b) buffer_size 1, writer ends before the Node reader connects', async () => {
    const channel = await newChannel(iii, 1);
    const data = randomBytes(FRAME);
    await writeAndFinish(channel, data);
    check(channel.reader.ws === null, 'the reader connected early');
    const got = await withTimeout(consume(channel.reader.stream), 10000, 'the late reader to reach the end');
    checkEqual(got.bytes, data.length, 'bytes the late reader received');
    checkEqual(got.sha256, sha256(data), 'SHA-256 of what the late reader received');
    ctx.log(`late Node reader got all ${got.bytes} bytes held by the engine`);
  });

  await ctx.part('c) buffer_size 1, writer ends before the C++ reader attaches', async () => {
    const channel = await newChannel(iii, 1);
    const data = randomBytes(40000);
    await writeAndFinish(channel, data);
    const out = tempPath('late-reader');
    const peer = spawnPeer(ctx, 'peer read-file (late)', ['read-file', JSON.stringify(channel.readerRef), out]);
    const m = await peer.waitLine(/^(END|ERR) (.*)$/, 10000, 'END from the late C++ reader');
    const file = await sha256File(out);
    const intact = file.bytes === data.length && file.sha256 === sha256(data);
    check(m[1] === 'END', explainReaderError(m[0], 'late C++ reader') +
      (intact ? ' (the data itself arrived intact)' : ' (data differs too)'));
    checkEqual(Number(m[2]), data.length, 'bytes the late C++ reader received');
    check(intact, 'the late C++ reader\'s file differs from what was written');
    ctx.log(`late C++ reader got all ${data.length} bytes held in the ring`);
  });

  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
});
