// Scenario 3: text messages interleaved with binary chunks arrive in order on both sides.
//   a) Node writer (sendMessage + binary writes, each awaited so that nothing overtakes
//      anything: sendMessage bypasses the Writable's queue) -> C++ reader
//      (peer read --transcript --hex prints one line per record: "B <len> <sum> <hex>" / "T <text>").
//   b) C++ writer (peer mixed REF COUNT: record i is the text "msg i" when i % 3 == 0, else
//      1 + (i * 7919) % 4999 bytes of the peer's pattern, continuing the binary stream) ->
//      Node reader using onMessage + the stream. The SDK splits text and binary into two sinks;
//      a message's position in the binary stream is recovered exactly as
//      (bytes delivered by 'data' so far) + stream.readableLength at the time onMessage fires.
// Both sides compare the exact record sequence (kind, bytes, boundaries).
import { randomBytes } from 'node:crypto';
import {
  scenario, connectSdk, newChannel, spawnPeer, writeAwait, endWriter, withTimeout, check, checkEqual,
  fillPattern, explainReaderError,
} from './lib.mjs';

const describeRec = (r) => (r.t === 'T' ? `T ${JSON.stringify(r.text)}` : `B ${r.data.length} bytes`);

function compareRecords(got, want, side) {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; ++i) {
    const g = got[i];
    const w = want[i];
    const same = g.t === w.t && (g.t === 'T' ? g.text === w.text : Buffer.compare(g.data, w.data) === 0);
    if (!same)
      throw new Error(`${side}: record ${i} differs: expected ${describeRec(w)}, got ${describeRec(g)}` +
        ` (previous: ${i ? describeRec(want[i - 1]) : 'none'})`);
  }
  checkEqual(got.length, want.length, `${side}: number of records`);
}

await scenario('s3_order', async (ctx) => {
  const iii = await connectSdk(ctx.url, 's3-order');

  await ctx.part('a) Node writer sendMessage + binary -> C++ reader, exact order', async () => {
    const channel = await newChannel(iii);
    const peer = spawnPeer(ctx, 'peer read --transcript', ['read', JSON.stringify(channel.readerRef), '--transcript', '--hex']);
    const w = channel.writer;
    let writeError = null;
    w.stream.on('error', (e) => { writeError = e; });
    const want = [];
    const texts = ['hello', 'ünïcödé ✓ text', '{"type":"event","n":1}', 'x'.repeat(3000), ''];
    const sizes = [1, 7, 4096, 65536, 12345, 100, 2, 60000, 3];
    // A message first, messages back to back, binary back to back, 64 KiB exactly.
    const plan = ['T', 'B', 'B', 'T', 'T', 'B', 'T', 'B', 'B', 'B', 'T', 'B', 'T', 'B', 'B', 'T'];
    let ti = 0;
    let bi = 0;
    for (const kind of plan) {
      if (kind === 'T') {
        const text = `${ti}:${texts[ti % texts.length]}`;
        ++ti;
        want.push({ t: 'T', text });
        w.sendMessage(text);
      } else {
        const data = randomBytes(sizes[bi++ % sizes.length]);
        want.push({ t: 'B', data });
        await writeAwait(w.stream, data);
      }
    }
    await endWriter(w.stream);
    check(!writeError, `Node writer stream error: ${writeError?.message}`);
    const m = await peer.waitLine(/^(END|ERR) .*$/, 20000, 'END from the C++ reader');
    const got = [];
    for (const line of peer.lines) {
      if (line.startsWith('T ')) got.push({ t: 'T', text: line.slice(2) });
      else if (line.startsWith('B ')) {
        const [, len, , hex = ''] = line.split(' ');
        const data = Buffer.from(hex, 'hex');
        checkEqual(data.length, Number(len), 'transcript record length vs its hex');
        got.push({ t: 'B', data });
      }
    }
    // Compare first: an order problem is the more specific diagnosis.
    compareRecords(got, want, 'C++ reader');
    check(m[1] === 'END', explainReaderError(m[0]) + ' (every record arrived in order before it)');
    ctx.log(`C++ reader saw ${got.length} records in the exact order written`);
  });

  await ctx.part('b) C++ writer (peer mixed) -> Node reader onMessage + stream, exact order', async () => {
    const COUNT = 600;
    const channel = await newChannel(iii);
    const r = channel.reader;
    const chunks = []; // {offset, data}
    const messages = []; // {offset, text}
    let delivered = 0;
    r.onMessage((text) => messages.push({ offset: delivered + r.stream.readableLength, text }));
    const ended = new Promise((resolve, reject) => {
      r.stream.on('data', (c) => {
        chunks.push({ offset: delivered, data: c });
        delivered += c.length;
      });
      r.stream.once('end', resolve);
      r.stream.once('error', reject);
    });
    const peer = spawnPeer(ctx, 'peer mixed', ['mixed', JSON.stringify(channel.writerRef), String(COUNT)]);
    await withTimeout(ended, 20000, 'the Node reader to reach the end');
    const pm = await peer.waitLine(/^(CLOSED|ERR.*)$/, 10000, 'CLOSED from peer mixed');
    check(pm[1] === 'CLOSED', `peer mixed failed: ${pm[0]}`);

    // The same sequence as peer_commands.cpp's do_mixed.
    const want = [];
    let off = 0;
    for (let i = 0; i < COUNT; ++i) {
      if (i % 3 === 0) want.push({ t: 'T', text: `msg ${i}` });
      else {
        const n = 1 + ((i * 7919) % 4999);
        want.push({ t: 'B', data: fillPattern(n, off) });
        off += n;
      }
    }
    // Merge: a message whose offset is X came after every chunk that ends at or before X and
    // before the chunk that starts at X.
    const got = [];
    let ci = 0;
    for (const msg of messages) {
      while (ci < chunks.length && chunks[ci].offset < msg.offset) {
        const c = chunks[ci++];
        check(c.offset + c.data.length <= msg.offset,
          `message ${JSON.stringify(msg.text)} arrived in the middle of a binary chunk (offset ${msg.offset})`);
        got.push({ t: 'B', data: c.data });
      }
      got.push({ t: 'T', text: msg.text });
    }
    for (; ci < chunks.length; ++ci) got.push({ t: 'B', data: chunks[ci].data });
    compareRecords(got, want, 'Node reader');
    checkEqual(delivered, off, 'binary bytes the Node reader received');
    ctx.log(`Node reader saw ${messages.length} messages and ${chunks.length} chunks (${delivered} bytes) in the exact order written`);
  });

  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
});
