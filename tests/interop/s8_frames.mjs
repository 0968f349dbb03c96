// Scenario 8: shmchan frames reaching a stock Node reader (docs/engine.md, "Frames on the
// channel socket"). The C++ peer (peer frames REF COUNT, through shared memory) writes text
// messages, frames with meta, and chunks; the engine sends each frame to the Node reader as a
// text message {"shmchan_frame":{...}} and then the frame's bytes as binary. Checked: the Node
// reader's onMessage gets every meta JSON (fields equal to what the peer set, keys in the
// encoder's order) at the exact position in the binary stream where the frame's bytes start,
// the ordinary messages at theirs, and the binary stream is every frame's and chunk's bytes in
// order.
import {
  scenario, connectSdk, newChannel, spawnPeer, withTimeout, check, checkEqual, fillPattern,
} from './lib.mjs';

const COUNT = 60;

await scenario('s8_frames', async (ctx) => {
  const iii = await connectSdk(ctx.url, 's8-frames');

  await ctx.part('C++ writer with frames (peer frames) -> Node reader: meta text, then the bytes', async () => {
    const channel = await newChannel(iii);
    const r = channel.reader;
    const messages = []; // {offset, text}
    const chunks = [];
    let delivered = 0;
    r.onMessage((text) => messages.push({ offset: delivered + r.stream.readableLength, text }));
    const ended = new Promise((resolve, reject) => {
      r.stream.on('data', (c) => {
        chunks.push(c);
        delivered += c.length;
      });
      r.stream.once('end', resolve);
      r.stream.once('error', reject);
    });
    const peer = spawnPeer(ctx, 'peer frames', ['frames', JSON.stringify(channel.writerRef), String(COUNT)]);
    await withTimeout(ended, 30000, 'the Node reader to reach the end');
    const pm = await peer.waitLine(/^(CLOSED|ERR.*)$/, 10000, 'CLOSED from peer frames');
    check(pm[1] === 'CLOSED', `peer frames failed: ${pm[0]}`);

    // The same sequence as peer_commands.cpp's do_mixed with frames.
    const want = []; // text messages with their offsets
    const wantBytes = [];
    let off = 0;
    let frames = 0;
    for (let i = 0; i < COUNT; ++i) {
      if (i % 3 === 0) {
        want.push({ offset: off, text: `msg ${i}` });
        continue;
      }
      const frame = i % 3 === 1;
      const n = 1 + ((i * 7919) % (frame ? 70000 : 4999));
      if (frame) {
        const meta = {};
        if (i % 5 === 0) meta.duration = 40000000;
        if (i) meta.flags = i;
        meta.pts = i * 1000;
        meta.size = n;
        if (i % 2) meta.user = Buffer.from(`u${i}`).toString('base64');
        want.push({ offset: off, text: JSON.stringify({ shmchan_frame: meta }), meta, frame: true });
        ++frames;
      }
      wantBytes.push(fillPattern(n, off));
      off += n;
    }
    checkEqual(messages.length, want.length, 'text messages (ordinary and frame meta) the Node reader got');
    for (let k = 0; k < Math.min(messages.length, want.length); ++k) {
      const g = messages[k];
      const w = want[k];
      checkEqual(g.text, w.text, `message ${k}`);
      checkEqual(g.offset, w.offset, `position in the binary stream of message ${k} (${w.text.slice(0, 40)})`);
      if (w.frame) {
        const parsed = JSON.parse(g.text).shmchan_frame;
        checkEqual(JSON.stringify(parsed), JSON.stringify(w.meta), `meta of message ${k}`);
      }
    }
    const got = Buffer.concat(chunks);
    const all = Buffer.concat(wantBytes);
    checkEqual(got.length, all.length, 'binary bytes the Node reader received');
    check(Buffer.compare(got, all) === 0, 'the binary stream differs from the frames and chunks written');
    ctx.log(`Node reader saw ${frames} frames as meta text + bytes, ${messages.length - frames} messages, ${delivered} bytes, in order`);
  });

  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
});
