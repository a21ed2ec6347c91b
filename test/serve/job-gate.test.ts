/**
 * The claim as a gate around a job's capabilities (runner/serve/job-gate.ts),
 * on stand-in capabilities: the sandbox behind them is tested with the gate in
 * test/sandbox/sandbox.test.ts, the claim race in claim.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { LogLine } from '../../host-api/log.ts';
import type { Documents } from '../../host-api/documents.ts';
import type { JobResources } from '../../runner/sandbox/job.ts';
import { JobStopped } from '../../runner/sandbox/sandbox.ts';
import { JobGate } from '../../runner/serve/job-gate.ts';

/** A documents capability that records what it was asked to do. */
function recordingDocuments() {
  const calls: string[] = [];
  const documents: Documents = {
    saved: { 'io.cozy.bills': 0 },
    async save(doctype) {
      calls.push(`save ${doctype}`);
      this.saved[doctype] = (this.saved[doctype] ?? 0) + 1;
      return '{}';
    },
    async find() {
      calls.push('find');
      return '[]';
    },
    async ensureAccount() {
      calls.push('ensureAccount');
    },
  };
  return { documents, calls };
}

function claimLater() {
  let land!: (owned: boolean) => void;
  return { claimed: new Promise<boolean>((resolve) => (land = resolve)), land };
}

const guarded = (gate: JobGate, documents: Documents) =>
  gate.environment(() => {}).guard('documents', documents) as JobResources['documents'];
const line = (message: string): LogLine => ({ time: new Date().toISOString(), level: 'info', source: 'konnector', message });

describe('the claim on a job, around its capabilities', () => {
  it('holds the calls that act for the job until the claim lands, then serves them in order, counters live', async () => {
    const { claimed, land } = claimLater();
    const { documents, calls } = recordingDocuments();
    const docs = guarded(new JobGate(claimed), documents);
    const saving = docs.save('io.cozy.bills', '{}');
    const finding = docs.find('io.cozy.bills', '{}', 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toEqual([]);
    land(true);
    await Promise.all([saving, finding]);
    expect(calls).toEqual(['save io.cozy.bills', 'find']);
    expect(docs.saved).toEqual({ 'io.cozy.bills': 1 });
  });

  it('refuses every call and stops the job when the claim never lands; the stop says why', async () => {
    const { claimed, land } = claimLater();
    const { documents, calls } = recordingDocuments();
    const gate = new JobGate(claimed);
    const { signal } = gate.environment(() => {});
    const saving = guarded(gate, documents).save('io.cozy.bills', '{}');
    land(false);
    await expect(saving).rejects.toThrow(JobStopped);
    expect(calls).toEqual([]);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('the host did not get the job');
  });

  it('refuses the calls made once the host lost the job, and stops it at once', async () => {
    const { documents, calls } = recordingDocuments();
    const gate = new JobGate();
    const { signal } = gate.environment(() => {});
    const docs = guarded(gate, documents);
    await docs.save('io.cozy.bills', '{}');
    gate.revoke('its lease lapsed');
    expect(signal.reason).toBe('the host lost the job: its lease lapsed');
    await expect(docs.save('io.cozy.bills', '{}')).rejects.toThrow('the host lost the job: its lease lapsed');
    await expect(docs.ensureAccount()).rejects.toThrow(JobStopped);
    expect(calls).toEqual(['save io.cozy.bills']);
  });

  it('passes log lines on once the claim lands, in order, and none once the job is lost', async () => {
    const { claimed, land } = claimLater();
    const gate = new JobGate(claimed);
    const delivered: string[] = [];
    const { onLog } = gate.environment((l) => delivered.push(l.message));
    onLog(line('one'));
    onLog(line('two'));
    expect(delivered).toEqual([]);
    land(true);
    await claimed;
    await new Promise((resolve) => setTimeout(resolve, 0));
    onLog(line('three'));
    expect(delivered).toEqual(['one', 'two', 'three']);
    gate.revoke('drained');
    onLog(line('four'));
    expect(delivered).toEqual(['one', 'two', 'three']);
  });

  it('drops the held lines of a job the host never got', async () => {
    const delivered: string[] = [];
    const { claimed, land } = claimLater();
    const { onLog } = new JobGate(claimed).environment((l) => delivered.push(l.message));
    onLog(line('early'));
    land(false);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(delivered).toEqual([]);
  });
});
