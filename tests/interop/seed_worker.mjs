// The seed's Node example, worker side: files::process counts bytes from input.reader.stream.
import { registerWorker } from 'iii-sdk';

const iii = registerWorker(process.env.III_URL, { workerName: 'files-worker', enableMetricsReporting: false });
iii.registerFunction(process.env.FUNCTION_ID ?? 'files::process', async (input) => {
  let bytes = 0;
  for await (const chunk of input.reader.stream) {
    bytes += Buffer.isBuffer(chunk) ? chunk.length : Buffer.byteLength(chunk);
  }
  return { bytes, filename: input.filename };
});
console.log('READY');
