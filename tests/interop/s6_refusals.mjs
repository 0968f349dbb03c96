// Scenario 6: wrong key, wrong direction and a second claim. The stock Node side must see the
// failure, and nothing may hang.
//   - Wrong key / wrong direction: ChannelReader / ChannelWriter built with a forged ref. The
//     engine answers before the upgrade (404 for an unknown key, 403 for the other end's key);
//     ws turns that into "Unexpected server response: NNN", which the SDK emits as 'error' on
//     the stream (an error listener is attached: without one the process would crash).
//   - Second reader claim: two ChannelReaders on one reader ref. One gets all the data; the
//     other ends at once with no data. NOTE: that second reader sees a *clean, empty* end, not
//     an error: the stock Node SDK turns every close of a reader socket into end-of-stream
//     (push(null)) whatever the close code, so it cannot report the engine's refusal. That is
//     a limitation of the SDK; a raw WebSocket claiming the same end shows the engine's actual
//     answer (close 1008 "already claimed").
//   - Second writer claim: the second ChannelWriter's stream is destroyed; the reader gets
//     exactly the first writer's bytes.
import { randomUUID, randomBytes } from 'node:crypto';
import { ChannelReader, ChannelWriter } from 'iii-sdk/channel';
import {
  scenario, connectSdk, newChannel, importWs, consume, endWriter, writeAwait, withTimeout, waitFor, check, checkEqual,
  sha256,
} from './lib.mjs';

// Resolves with the error the stream emits; rejects if it ends or closes without one.
function expectStreamError(stream, start) {
  return new Promise((resolve, reject) => {
    stream.once('error', resolve);
    stream.once('end', () => reject(new Error('the stream ended cleanly instead of failing')));
    stream.once('close', () => setTimeout(() => reject(new Error('the stream closed without an error')), 50));
    start();
  });
}

function channelUrl(base, ref, dir) {
  return `${base.replace(/\/$/, '')}/ws/channels/${ref.channel_id}?key=${encodeURIComponent(ref.access_key)}&dir=${dir}`;
}

await scenario('s6_refusals', async (ctx) => {
  const iii = await connectSdk(ctx.url, 's6-refusals');
  const address = iii.address;
  check(typeof address === 'string' && address.startsWith('ws'), `iii.address is ${address}`);

  const cases = [
    ['reader with a random key -> 404', 'read', (ch) => ({ ...ch.readerRef, access_key: randomUUID() }), 404],
    ['writer with a random key -> 404', 'write', (ch) => ({ ...ch.writerRef, access_key: randomUUID() }), 404],
    ['reader with the writer\'s key (wrong direction) -> 403', 'read',
      (ch) => ({ ...ch.writerRef, direction: 'read' }), 403],
    ['writer with the reader\'s key (wrong direction) -> 403', 'write',
      (ch) => ({ ...ch.readerRef, direction: 'write' }), 403],
    ['reader of an unknown channel -> 404', 'read', (ch) => ({ ...ch.readerRef, channel_id: randomUUID() }), 404],
  ];
  for (const [name, dir, forge, status] of cases) {
    await ctx.part(name, async () => {
      const ch = await newChannel(iii);
      const ref = forge(ch);
      let err;
      if (dir === 'read') {
        const r = new ChannelReader(address, ref);
        err = await withTimeout(expectStreamError(r.stream, () => r.stream.resume()), 15000,
          'the forged reader to fail');
      } else {
        const w = new ChannelWriter(address, ref);
        err = await withTimeout(expectStreamError(w.stream, () => w.stream.write(Buffer.from('x'))), 15000,
          'the forged writer to fail');
      }
      check(String(err?.message).includes(`Unexpected server response: ${status}`),
        `expected "Unexpected server response: ${status}", got: ${err?.message}`);
      ctx.log(`${name}: stream error "${err.message}"`);
      // The real ends still work afterwards: the refusal claimed nothing.
      const reading = consume(ch.reader.stream);
      const data = randomBytes(1000);
      await withTimeout(endWriter(ch.writer.stream, data), 10000, 'the genuine writer to end');
      const got = await withTimeout(reading, 10000, 'the genuine reader to end');
      checkEqual(got.sha256, sha256(data), 'data through the genuine ends after the refusal');
    }, 40000);
  }

  await ctx.part('second reader claim: one reader gets everything, the other ends empty', async () => {
    const ch = await newChannel(iii);
    const r1 = new ChannelReader(address, ch.readerRef);
    const r2 = new ChannelReader(address, ch.readerRef);
    const errors = [];
    r1.stream.on('error', (e) => errors.push(`reader 1: ${e.message}`));
    r2.stream.on('error', (e) => errors.push(`reader 2: ${e.message}`));
    const ends = [consume(r1.stream), consume(r2.stream)].map((p) => p.catch((e) => ({ error: e.message })));
    // The refused one ends right away (its socket is closed by the engine); the other waits.
    const first = await withTimeout(Promise.race(ends), 10000, 'one of the two readers to be refused');
    checkEqual(first.bytes, 0, 'bytes of the refused reader');
    // A raw WebSocket claiming the same end sees what the SDK hides: the close code.
    const { WebSocket, missing } = await importWs();
    let rawNote;
    if (!WebSocket) {
      rawNote = `raw third claim skipped: cannot load the ws package (${missing})`;
      console.log(`    SKIP ${rawNote}`);
    } else {
      const raw = new WebSocket(channelUrl(address, ch.readerRef, 'read'));
      const rawClose = await withTimeout(new Promise((resolve, reject) => {
        raw.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
        raw.on('error', reject);
        raw.on('message', () => reject(new Error('the raw third reader received data')));
      }), 10000, 'the raw third reader to be closed');
      checkEqual(rawClose.code, 1008, 'close code for a third claim of the read end');
      check(/already claimed/.test(rawClose.reason), `close reason "${rawClose.reason}" does not say "already claimed"`);
      rawNote = `raw third claim: close ${rawClose.code} "${rawClose.reason}"`;
    }
    const data = randomBytes(1024 * 1024 + 7);
    await withTimeout(endWriter(ch.writer.stream, data), 10000, 'the writer to end');
    const [g1, g2] = await withTimeout(Promise.all(ends), 10000, 'both readers to end');
    check(!g1.error && !g2.error, `a reader failed: ${errors.join('; ')}`);
    const winner = g1.bytes ? g1 : g2;
    const loser = g1.bytes ? g2 : g1;
    checkEqual(loser.bytes, 0, 'bytes of the second claimant');
    checkEqual(winner.bytes, data.length, 'bytes of the reader that holds the claim');
    checkEqual(winner.sha256, sha256(data), 'SHA-256 of what the claiming reader got');
    ctx.log(`second reader: clean empty end (SDK limitation); ${rawNote}`);
  });

  await ctx.part('second writer claim: the second writer is refused, the reader gets the first\'s data', async () => {
    const ch = await newChannel(iii);
    let received = 0;
    const reading = consume(ch.reader.stream, { onChunk: (c) => { received += c.length; } });
    const w1 = ch.writer;
    w1.stream.on('error', (e) => { throw new Error(`writer 1 error: ${e.message}`); });
    const part1 = randomBytes(5000);
    await writeAwait(w1.stream, part1);
    await waitFor(() => received >= part1.length, 10000, 'the reader to get writer 1\'s first bytes');
    const w2 = new ChannelWriter(address, ch.writerRef);
    let w2error = null;
    w2.stream.on('error', (e) => { w2error = e; });
    const w2closed = new Promise((resolve) => w2.stream.once('close', resolve));
    w2.stream.write(Buffer.from('intruder'), () => {});
    await withTimeout(w2closed, 10000, 'the second writer\'s stream to be closed by the refusal');
    const part2 = randomBytes(70000);
    await withTimeout(endWriter(w1.stream, part2), 10000, 'writer 1 to end');
    const got = await withTimeout(reading, 10000, 'the reader to end');
    const want = Buffer.concat([part1, part2]);
    checkEqual(got.bytes, want.length, 'bytes the reader got (writer 1 only)');
    checkEqual(got.sha256, sha256(want), 'SHA-256 of what the reader got');
    ctx.log(`second writer: stream closed${w2error ? ` with error "${w2error.message}"` : ' (no error: the SDK destroys it silently)'}; reader got only writer 1's ${got.bytes} bytes`);
  });

  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
});
