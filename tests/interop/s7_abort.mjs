// Scenario 7: a C++ writer aborts (peer write REF --size 1000 --then abort:oops).
//   a) a stock Node reader: the engine closes its socket with 4000 "aborted: oops", which the
//      SDK reports as a *clean* end (every close code ends a Node reader's stream; see
//      docs/iii-protocol-notes.md). Recorded, and asserted only that it ends without hanging
//      after exactly the 1000 bytes (the peer's pattern).
//   b) a raw WebSocket (the `ws` package, a dependency of iii-sdk) connected to the channel
//      socket as the reader: the close code must be 4000 and the reason "aborted: oops", which
//      proves that the engine tells socket readers about aborts.
import {
  scenario, connectSdk, newChannel, importWs, spawnPeer, consume, withTimeout, waitFor, check, checkEqual, fillPattern,
} from './lib.mjs';

const { WebSocket, missing: wsMissing } = await importWs();

async function abortingWriter(ctx, ref) {
  const peer = spawnPeer(ctx, 'peer write --then abort:oops',
    ['write', JSON.stringify(ref), '--size', '1000', '--then', 'abort:oops']);
  const m = await peer.waitLine(/^(ABORTED|ERR.*)$/, 10000, 'ABORTED from the C++ writer');
  check(m[1] === 'ABORTED', `C++ writer failed: ${m[0]}`);
  await peer.waitExit(10000);
}

await scenario('s7_abort', async (ctx) => {
  const iii = await connectSdk(ctx.url, 's7-abort');
  const want = fillPattern(1000, 0);

  await ctx.part('a) C++ writer aborts -> stock Node reader', async () => {
    const ch = await newChannel(iii);
    let closeInfo = null;
    const reading = consume(ch.reader.stream, { keep: true });
    // Record what the SDK's socket saw (the SDK itself throws the close code away). The
    // reader connects on its first read, which consume() has just started.
    const sock = await waitFor(() => ch.reader.ws, 5000, 'the Node reader to open its socket', 1);
    sock.on('close', (code, reason) => { closeInfo = { code, reason: reason.toString() }; });
    await abortingWriter(ctx, ch.writerRef);
    let outcome;
    try {
      const got = await withTimeout(reading, 10000, 'the Node reader to finish');
      outcome = { kind: 'end', got };
    } catch (e) {
      outcome = { kind: 'error', message: e.message };
    }
    const got = outcome.got;
    ctx.log(`Node reader saw: ${outcome.kind === 'end' ? `a clean 'end' after ${got.bytes} bytes` : `'error' ${outcome.message}`}` +
      `${closeInfo ? `; its socket was closed with ${closeInfo.code} "${closeInfo.reason}"` : ''}` +
      ` (the SDK cannot tell an abort from a complete stream)`);
    check(outcome.kind === 'end', `expected the SDK's clean end, got an error: ${outcome.message}`);
    checkEqual(got.bytes, 1000, 'bytes the Node reader received before the abort');
    check(Buffer.concat(got.chunks).equals(want), 'the 1000 bytes differ from the peer\'s pattern');
  });

  await ctx.part('b) C++ writer aborts -> raw WebSocket reader sees close 4000 "aborted: oops"', async () => {
    if (!WebSocket) {
      console.log(`    SKIP: cannot import the ws package (${wsMissing})`);
      return;
    }
    const ch = await newChannel(iii);
    const url = `${iii.address.replace(/\/$/, '')}/ws/channels/${ch.readerRef.channel_id}` +
      `?key=${encodeURIComponent(ch.readerRef.access_key)}&dir=read`;
    const ws = new WebSocket(url);
    const chunks = [];
    const closed = new Promise((resolve, reject) => {
      ws.on('message', (data, isBinary) => {
        if (!isBinary) reject(new Error(`unexpected text frame ${data}`));
        chunks.push(Buffer.from(data));
      });
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      ws.on('error', reject);
    });
    await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }),
      10000, 'the raw reader socket to open');
    await abortingWriter(ctx, ch.writerRef);
    const c = await withTimeout(closed, 10000, 'the raw reader socket to be closed');
    const body = Buffer.concat(chunks);
    ctx.log(`raw reader: ${body.length} bytes, then close ${c.code} "${c.reason}"`);
    checkEqual(body.length, 1000, 'bytes the raw reader received before the close');
    check(body.equals(want), 'the 1000 bytes differ from the peer\'s pattern');
    checkEqual(c.code, 4000, 'close code the engine sends a socket reader after an abort');
    checkEqual(c.reason, 'aborted: oops', 'close reason after the abort');
  });

  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
});
