// Scenario 4: a writer ref passed to a function. The Node caller creates a channel and passes
// channel.writerRef in the payload of reply::stream (reply_worker.mjs, another process); the
// SDK there resolves it into a ChannelWriter, the function streams its reply into it and ends
// it; the caller reads channel.reader.stream and checks the content, and the function's result.
import path from 'node:path';
import {
  scenario, connectSdk, newChannel, spawnChild, waitForFunction, consume, withTimeout, check, checkEqual,
  sha256, HERE,
} from './lib.mjs';
import { replyBody } from './reply_body.mjs';

await scenario('s4_writer_ref', async (ctx) => {
  const worker = spawnChild('reply_worker', process.execPath, [path.join(HERE, 'reply_worker.mjs')],
    { env: { III_URL: ctx.url } });
  await worker.waitLine(/^READY$/, 15000, 'READY');
  await waitForFunction(ctx.url, 'reply::stream');
  const iii = await connectSdk(ctx.url, 's4-caller');

  for (const [name, lines] of [['small', 3], ['report.csv', 20000]]) {
    await ctx.part(`reply "${name}" (${lines} lines) through a writer ref`, async () => {
      const channel = await newChannel(iii);
      const reading = consume(channel.reader.stream, { keep: true });
      const result = await withTimeout(iii.trigger({
        function_id: 'reply::stream',
        payload: { name, lines, writer: channel.writerRef },
        timeoutMs: 20000,
      }), 25000, 'iii.trigger(reply::stream)');
      const got = await withTimeout(reading, 20000, 'the caller to read the reply to the end');
      const want = replyBody(name, lines);
      checkEqual(result?.bytes, want.length, 'bytes reported by reply::stream');
      checkEqual(got.bytes, want.length, 'bytes of the reply the caller read');
      const body = Buffer.concat(got.chunks);
      check(body.equals(want), `reply content differs (sha256 ${sha256(body)} vs ${sha256(want)}); first bytes: ${JSON.stringify(body.subarray(0, 80).toString())}`);
      ctx.log(`reply "${name}": ${got.bytes} bytes, content equal; result ${JSON.stringify(result)}`);
    }, 40000);
  }
  await withTimeout(iii.shutdown(), 5000, 'iii.shutdown()').catch(() => {});
  await worker.stop();
});
