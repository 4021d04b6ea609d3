// The Node client against a live `rlm serve`: `RLM_ADDRESS=127.0.0.1:50051 RLM_KEY=rlm_... npm test`.
// tests/test_node_client.py starts a server (the process backend, a scripted model) and runs this file.
// RunStream and Run need a model whose first reply runs code that calls llm_query and prints, and whose
// second answers with FINAL(...): the pytest side scripts exactly that.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import grpc from '@grpc/grpc-js';

import { RLMClient, RLMError } from '../client.js';

const ADDRESS = process.env.RLM_ADDRESS;
const KEY = process.env.RLM_KEY;
if (!ADDRESS || !KEY) {
  throw new Error(
    'set RLM_ADDRESS (host:port of rlm serve) and RLM_KEY (a tenant key) to run the live tests',
  );
}

const client = new RLMClient(ADDRESS, KEY, { deadlineMs: 60_000 });
after(() => client.close());

/** The call must reject with an RLMError of this status; returns it. */
async function refused(promise, codeName) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RLMError, `not an RLMError: ${err}`);
    assert.equal(err.codeName, codeName, err.message);
    assert.equal(err.code, grpc.status[codeName]);
    return err;
  }
  assert.fail(`the call succeeded; expected ${codeName}`);
}

test('Execute: a cell over an inline context, its output and its exception', async () => {
  const cell = await client.execute('print(len(context))', { context: 'hello', sandbox: { timeout: 30 } });
  assert.equal(cell.status, 'CELL_STATUS_OK');
  assert.deepEqual(cell.stdout, { text: '5\n', totalBytes: 2, truncated: false });
  assert.equal(cell.error, null);
  assert.equal(cell.final, null);

  const files = await client.execute('FINAL(sorted(context))', { context: { 'b.txt': 'B', 'a.txt': 'A' } });
  assert.equal(files.final, "['a.txt', 'b.txt']");

  const failed = await client.execute('1 / 0', { context: ['x', 'y'] });
  assert.equal(failed.status, 'CELL_STATUS_ERROR');
  assert.equal(failed.error.type, 'ZeroDivisionError');
});

test('ExecuteStream: output chunks as written, then the outcome', async () => {
  const events = [];
  for await (const event of client.executeStream("import sys\nprint('out')\nprint('err', file=sys.stderr)", {
    context: 't',
  })) {
    events.push(event);
  }
  const last = events.pop();
  assert.equal(last.type, 'result');
  assert.equal(last.result.status, 'CELL_STATUS_OK');
  const text = (stream) =>
    events
      .filter((e) => e.stream === stream)
      .map((e) => e.text)
      .join('');
  assert.equal(text('stdout'), 'out\n');
  assert.equal(text('stderr'), 'err\n');
});

test('a session: two cells share a variable, then it is closed', async () => {
  const session = await client.openSession({ context: 'some text' });
  assert.match(session.sessionId, /\S{8,}/);
  assert.ok(session.idleTimeoutS > 0);
  try {
    const first = await client.runCell(session.sessionId, 'n = len(context) + 33');
    assert.equal(first.status, 'CELL_STATUS_OK');
    const second = await client.runCell(session.sessionId, 'print(n)', { timeoutS: 10 });
    assert.equal(second.stdout.text, '42\n');
  } finally {
    await client.closeSession(session.sessionId);
  }
  await refused(client.runCell(session.sessionId, 'n'), 'FAILED_PRECONDITION');
  await refused(client.runCell('0'.repeat(32), 'n'), 'NOT_FOUND');
});

test('RunStream: the accepted run id, the engine events, then the result', async () => {
  const events = [];
  for await (const event of client.runStream('What does the model say?', {
    context: 'ctx',
    options: { maxIterations: 4 },
  })) {
    events.push(event);
  }
  const [accepted, last] = [events[0], events.at(-1)];
  assert.equal(accepted.type, 'accepted');
  assert.match(accepted.runId, /^[0-9a-f]{16}$/);
  assert.ok(events.every((e) => e.runId === accepted.runId));
  assert.equal(last.type, 'result');
  assert.equal(last.result.runId, accepted.runId);
  assert.equal(last.result.status, 'RUN_STATUS_COMPLETED');
  assert.equal(last.result.answer, 'the model said pong');
  assert.equal(last.result.metadata.iterations, 2);
  assert.equal(last.result.metadata.subcallCount, 1);
  assert.equal(last.result.trajectory.answer, 'the model said pong');

  const types = events.slice(1, -1).map((e) => e.type);
  for (const type of [
    'iterationStarted',
    'modelText',
    'codeStarted',
    'subcallStarted',
    'subcallFinished',
    'cellFinished',
  ]) {
    assert.ok(types.includes(type), `no ${type} event in ${types}`);
  }
  assert.ok(types.indexOf('subcallStarted') < types.indexOf('subcallFinished'));
  assert.ok(types.indexOf('subcallFinished') < types.indexOf('cellFinished'));
  const subcall = events.find((e) => e.type === 'subcallFinished');
  assert.equal(subcall.kind, 'llm');
  assert.equal(subcall.model, 'sub-m');
  assert.equal(subcall.error, null);
  const cell = events.find((e) => e.type === 'cellFinished').cell;
  assert.equal(cell.status, 'CELL_STATUS_OK');
  assert.equal(cell.stdout, 'pong\n');
  assert.equal(cell.error, null);
});

test('Run, then GetRun and ListRuns find it', async () => {
  const result = await client.run('Again?', { context: 'ctx' });
  assert.equal(result.status, 'RUN_STATUS_COMPLETED');
  assert.equal(result.answer, 'the model said pong');

  const info = await client.getRun(result.runId, { includeTrajectory: true });
  assert.equal(info.run.runId, result.runId);
  assert.equal(info.run.query, 'Again?');
  assert.equal(info.run.status, 'RUN_STATUS_COMPLETED');
  assert.equal(typeof info.run.endedUnix, 'number');
  assert.equal(info.metadata.iterations, 2);
  assert.equal(info.trajectory.iterations.length, 2);
  const bare = await client.getRun(result.runId);
  assert.equal(bare.trajectory, null);

  const page = await client.listRuns({ pageSize: 50, statuses: ['RUN_STATUS_COMPLETED'] });
  assert.equal(page.runs[0].runId, result.runId, 'newest first');
  assert.ok(page.runs.every((r) => r.status === 'RUN_STATUS_COMPLETED'));
  await refused(client.getRun('0'.repeat(16)), 'NOT_FOUND');
});

test('UploadContext: a tar.gz, used by id, listed, deleted', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlm-node-'));
  try {
    mkdirSync(path.join(dir, 'logs'));
    writeFileSync(path.join(dir, 'readme.txt'), 'read me\n');
    writeFileSync(path.join(dir, 'logs', 'app.log'), 'ERROR one\nINFO two\nERROR three\n');
    const archive = execFileSync('tar', ['-czf', '-', '-C', dir, 'readme.txt', 'logs/app.log']);
    const ctx = await client.uploadContext(archive, 'node upload');
    assert.match(ctx.contextId, /\S{8,}/);
    assert.equal(ctx.name, 'node upload');
    assert.equal(ctx.fileCount, 2);
    assert.equal(ctx.kind, 'upload');

    const cell = await client.execute("print(list_files())\nprint(len(grep('ERROR')))", {
      contextId: ctx.contextId,
    });
    assert.equal(cell.stdout.text, "['logs/app.log', 'readme.txt']\n2\n");
    const { contexts } = await client.listContexts();
    assert.ok(contexts.some((c) => c.contextId === ctx.contextId));

    await client.deleteContext(ctx.contextId);
    await refused(client.execute('1', { contextId: ctx.contextId }), 'NOT_FOUND');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refusals: a wrong key is UNAUTHENTICATED; a bad request INVALID_ARGUMENT', async () => {
  const stranger = new RLMClient(ADDRESS, `rlm_${randomBytes(32).toString('hex')}`);
  try {
    const err = await refused(stranger.execute('1', { context: 't' }), 'UNAUTHENTICATED');
    assert.ok(err.details.length > 0);
    await assert.rejects(
      async () => {
        for await (const _ of stranger.runStream('q', { context: 't' })) {
          // nothing arrives
        }
      },
      (e) => e instanceof RLMError && e.codeName === 'UNAUTHENTICATED',
    );
  } finally {
    stranger.close();
  }
  const bad = await refused(
    client.execute('1', { context: 't', sandbox: { runtime: 'no-such-runtime' } }),
    'INVALID_ARGUMENT',
  );
  assert.ok(bad.errorClass, 'the x-rlm-error trailer names the class');
  await assert.rejects(client.execute('1', {}), TypeError);
});
