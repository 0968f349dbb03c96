// Scenario 1: the seed's Node example, as two processes. seed_worker.mjs registers
// files::process and counts the bytes of input.reader.stream; seed_caller.mjs creates a
// channel, ends its writer with one buffer and triggers files::process with
// {filename, reader: channel.readerRef}. The byte count must come back exactly.
import path from 'node:path';
import { scenario, spawnChild, waitForFunction, checkEqual, HERE } from './lib.mjs';

await scenario('s1_seed', async (ctx) => {
  const env = { III_URL: ctx.url };
  const worker = spawnChild('seed_worker', process.execPath, [path.join(HERE, 'seed_worker.mjs')], { env });
  await worker.waitLine(/^READY$/, 15000, 'READY');
  await waitForFunction(ctx.url, 'files::process');

  for (const size of [1024 * 1024, 5 * 1024 * 1024 + 12345, 1]) {
    const caller = spawnChild(`seed_caller(${size})`, process.execPath, [path.join(HERE, 'seed_caller.mjs')],
      { env: { ...env, SIZE: String(size) } });
    const m = await caller.waitLine(/^RESULT (.*)$/, 30000, 'RESULT');
    const result = JSON.parse(m[1]);
    checkEqual(result.bytes, size, `files::process byte count for SIZE=${size}`);
    checkEqual(result.filename, 'report.csv', 'filename echoed by files::process');
    const info = await caller.waitExit(10000, 'exit after iii.shutdown()');
    checkEqual(info.code, 0, `seed_caller exit code for SIZE=${size}`);
    ctx.log(`SIZE=${size}: RESULT ${m[1]}`);
  }
  await worker.stop();
});
