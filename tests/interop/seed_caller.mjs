// The seed's Node example, caller side: create a channel, end the writer with a buffer,
// trigger files::process with the reader ref.
import { registerWorker } from 'iii-sdk';
import { createChannel } from 'iii-sdk/helpers';

const iii = registerWorker(process.env.III_URL, { workerName: 'files-caller', enableMetricsReporting: false });
const size = Number(process.env.SIZE ?? 1024 * 1024);
const channel = await createChannel(iii);
channel.writer.stream.end(Buffer.alloc(size, 0x61));
const result = await iii.trigger({
  function_id: process.env.FUNCTION_ID ?? 'files::process',
  payload: { filename: 'report.csv', reader: channel.readerRef },
  timeoutMs: 30_000,
});
console.log('RESULT ' + JSON.stringify(result));
await iii.shutdown();
