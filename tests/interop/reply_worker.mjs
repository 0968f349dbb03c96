// Worker of scenario 4: reply::stream receives a writer ref in its payload (the SDK resolves
// it into a live ChannelWriter, input.writer), streams a reply into it and ends it.
// The reply is replyBody(input.name, input.lines), which the caller rebuilds to compare.
import { registerWorker } from 'iii-sdk';
import { replyBody } from './reply_body.mjs';

const iii = registerWorker(process.env.III_URL, { workerName: 'reply-worker', enableMetricsReporting: false });
iii.registerFunction('reply::stream', async (input) => {
  const w = input.writer;
  if (!w || typeof w.sendMessage !== 'function' || !w.stream)
    throw new Error(`input.writer is not a ChannelWriter: ${JSON.stringify(input.writer)}`);
  const body = replyBody(input.name, input.lines);
  await new Promise((resolve, reject) => {
    w.stream.once('error', reject);
    w.stream.once('finish', resolve);
    // Several writes, then end: the reply crosses several 64 KiB frames.
    const step = 50000;
    for (let off = 0; off < body.length; off += step) w.stream.write(body.subarray(off, off + step));
    w.stream.end();
  });
  return { bytes: body.length, name: input.name };
});
console.log('READY');
