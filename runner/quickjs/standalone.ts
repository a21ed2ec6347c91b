/**
 * A QuickJS engine call outside a job, for the engine's own tests and measurements (measure.ts): the world's
 * calls a konnector can make without a job's capabilities are answered here, the worker-answered ones
 * (clock, randomness) by their descriptors' functions and `log.write` by `onLog`; any other (http,
 * documents, files) is answered `invalid`, saying it needs a job (runner/quickjs/job.ts).
 */
import vm from 'node:vm';
import { shortName, type WorkerCapability } from '../../host-api/capability.ts';
import { CAPABILITIES } from '../../host-api/index.ts';
import { decodeCall, encodeAnswer, MalformedCall } from './host-calls.ts';
import type { EngineCallOptions, LogLine } from './instance.ts';

const workerAnswered = new Map<string, (...args: unknown[]) => unknown>(
  CAPABILITIES.filter((c): c is Extract<(typeof CAPABILITIES)[number], { answeredBy: 'worker' }> => c.answeredBy === 'worker').flatMap((capability) =>
    Object.entries((capability as WorkerCapability).functions as Record<string, (...args: unknown[]) => unknown>).map(
      ([fn, answer]) => [`${shortName(capability.interface)}.${fn}`, answer] as [string, (...args: unknown[]) => unknown],
    ),
  ),
);

/** Engine call options whose host answers what needs no job; log lines go to `onLog`. */
export function standaloneHost(onLog: (line: LogLine) => void = () => {}): Pick<EngineCallOptions, 'host' | 'onLog'> {
  return {
    onLog,
    host: () => ({
      call(text, bytes) {
        try {
          const { op, args } = decodeCall(text, bytes);
          if (op === 'log.write') {
            onLog({ level: String(args[0]), message: String(args[1]) });
            return encodeAnswer({ ok: undefined });
          }
          const answer = workerAnswered.get(op);
          if (!answer) return encodeAnswer({ invalid: `${op} needs a job: run the konnector with runJob (runner/quickjs/job.ts)` });
          return encodeAnswer({ ok: answer(...args) });
        } catch (error) {
          if (error instanceof MalformedCall) return encodeAnswer({ invalid: error.message });
          throw error;
        }
      },
    }),
  };
}

/**
 * The same bundled script run by V8, in a context of its own (the bundle's prelude replaces the context's
 * Date, timers and fetch), its host calls answered as above: what the engine's results are compared with.
 */
export async function runScriptOnNode(script: string, job: unknown, onLog: (line: LogLine) => void = () => {}): Promise<void> {
  const hooks = standaloneHost(onLog).host!({ charge() {}, memoryBytes: () => 0, fuelUsed: () => null });
  const call = (text: string, bytes?: ArrayBuffer) => {
    const block = hooks.call!(new TextEncoder().encode(text), new Uint8Array(bytes ?? new ArrayBuffer(0)));
    const length = new DataView(block.buffer, block.byteOffset).getUint32(0, true);
    return [new TextDecoder().decode(block.subarray(4, 4 + length)), block.slice(4 + length).buffer];
  };
  const konnector = vm.runInNewContext(`${script}\nkonnector`, { __host: { call } }) as { run(job: unknown): Promise<unknown> };
  await konnector.run(job);
}
