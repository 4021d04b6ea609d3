// A small Node.js client for `rlm serve` (rlm.v1.RLMService), on @grpc/grpc-js and @grpc/proto-loader.
//
//   import { RLMClient } from './client.js';
//   const client = new RLMClient('127.0.0.1:50051', process.env.RLM_KEY);
//   const cell = await client.execute('print(len(context))', { context: 'some text' });
//   console.log(cell.status, cell.stdout.text);        // CELL_STATUS_OK 9\n
//   client.close();
//
// The service is loaded at run time from proto/rlm/v1/service.proto of this repository (resolved from
// this file: ../../../proto), or from `protoPath` / $RLM_PROTO. Every call sends
// `authorization: Bearer <key>`. Replies are plain objects with the proto's fields in camelCase, enums as
// their names ("CELL_STATUS_OK", "RUN_STATUS_COMPLETED"), 64-bit counts as numbers, and optional fields
// that the server left unset as null. A refused call rejects with an RLMError: the gRPC status `code`
// (a number, as grpc.status), its name `codeName`, the server's `details`, the server's error class
// (`errorClass`, from the x-rlm-error trailer) and the quota it names (`quota`, from x-rlm-quota).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository's proto root, from this file's place in it (examples/clients/node). */
export const PROTO_ROOT = path.resolve(HERE, '..', '..', '..', 'proto');
const SERVICE_PROTO = path.join('rlm', 'v1', 'service.proto');
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const UPLOAD_CHUNK_BYTES = 1024 * 1024;

/** @type {Map<string, any>} proto file -> the RLMService constructor */
const loaded = new Map();

/**
 * The generated service constructor for the proto file (cached).
 * @param {string} [protoPath] the path of service.proto; default: $RLM_PROTO, else the repository's
 * @returns {any}
 */
export function loadService(protoPath) {
  const file = protoPath ?? process.env.RLM_PROTO ?? path.join(PROTO_ROOT, SERVICE_PROTO);
  let service = loaded.get(file);
  if (!service) {
    const definition = protoLoader.loadSync(file, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: [path.dirname(path.dirname(path.dirname(file)))],
    });
    service = /** @type {any} */ (grpc.loadPackageDefinition(definition)).rlm.v1.RLMService;
    loaded.set(file, service);
  }
  return service;
}

/** A refused call: the gRPC status and the server's message. */
export class RLMError extends Error {
  /**
   * @param {number} code the gRPC status code (grpc.status, e.g. 16 for UNAUTHENTICATED)
   * @param {string} details the server's message
   * @param {string | null} errorClass the server's error class (x-rlm-error), e.g. "NotFoundError"
   * @param {string | null} quota the quota that refused the call (x-rlm-quota), e.g. "max_sandboxes"
   */
  constructor(code, details, errorClass = null, quota = null) {
    const codeName = grpc.status[code] ?? String(code);
    super(`${codeName}: ${details}`);
    this.name = 'RLMError';
    /** @type {number} */
    this.code = code;
    /** @type {string} */
    this.codeName = codeName;
    /** @type {string} */
    this.details = details;
    /** @type {string | null} */
    this.errorClass = errorClass;
    /** @type {string | null} */
    this.quota = quota;
  }
}

/**
 * @param {any} err a grpc-js ServiceError (or anything thrown on the way)
 * @returns {Error}
 */
function toError(err) {
  if (err instanceof RLMError || typeof err?.code !== 'number') return err;
  const trailer = (/** @type {string} */ key) => {
    const values = err.metadata?.get?.(key) ?? [];
    return values.length ? String(values[0]) : null;
  };
  return new RLMError(err.code, err.details ?? err.message, trailer('x-rlm-error'), trailer('x-rlm-quota'));
}

/** @param {string | Buffer | undefined} value PEM text or bytes, or a file path */
function pem(value) {
  if (value === undefined || value === null) return null;
  if (Buffer.isBuffer(value)) return value;
  return value.includes('-----BEGIN') ? Buffer.from(value) : readFileSync(value);
}

// ---- shapes ---------------------------------------------------------------------------------------

/**
 * @typedef {string | string[] | Record<string, string>} ContextValue
 *   a text (`context` is a str in the sandbox), a list of texts, or a map of name -> text
 * @typedef {{context?: ContextValue, contextId?: string}} ContextChoice
 *   an inline context, or an uploaded one by id (exactly one)
 * @typedef {{memory?: string, cpus?: number, pids?: number, nofile?: number, tmpfs?: string,
 *   fileSize?: string, timeout?: number, maxOutputBytes?: number, runtime?: string}} SandboxOptions
 *   may only lower the operator's limits
 * @typedef {{rootModel?: string, subModel?: string, maxDepth?: number, maxIterations?: number,
 *   maxSubcalls?: number, maxTokens?: number, deadlineS?: number, recursiveLlmQuery?: boolean}} RunOptions
 * @typedef {{deadlineMs?: number}} CallOptions a deadline for this call, in milliseconds from now
 *
 * @typedef {{text: string, totalBytes: number, truncated: boolean}} OutputText
 * @typedef {{status: string, stdout: OutputText, stderr: OutputText,
 *   error: {type: string, message: string, traceback: string} | null, final: string | null,
 *   finalTruncated: boolean, durationS: number}} CellResult
 * @typedef {{stream: 'stdout' | 'stderr', text: string}} OutputChunk
 * @typedef {{sessionId: string, idleTimeoutS: number, runtime: string}} SessionInfo
 * @typedef {Record<string, any>} RunMetadata the proto's RunMetadata (costUsd null when unpriced)
 * @typedef {{runId: string, status: string, answer: string | null, error: string,
 *   metadata: RunMetadata | null, trajectory: any}} RunResult trajectory: Trajectory.to_json, parsed
 * @typedef {{runId: string, status: string, query: string, answer: string | null, error: string,
 *   rootModel: string, createdUnix: number, endedUnix: number | null, promptTokens: number,
 *   completionTokens: number, costUsd: number | null}} RunSummary
 * @typedef {{run: RunSummary, metadata: RunMetadata | null, trajectory: any}} RunInfo
 * @typedef {{runs: RunSummary[], nextPageToken: string}} RunPage
 * @typedef {{contextId: string, name: string, fileCount: number, totalBytes: number,
 *   createdUnix: number, kind: string}} ContextInfo
 * @typedef {{type: string, runId: string, [field: string]: any}} RunEvent
 *   type: the RunEvent field set (accepted, iterationStarted, modelText, modelTextReset, codeStarted,
 *   cellFinished, subcallStarted, subcallFinished), with that message's fields (a sub-call's `kind` is
 *   "llm" or "rlm"); the last is {type: 'result', runId, result: RunResult}
 */

/** @param {any} m @param {string[]} optional fields that are null when unset */
function plain(m, optional = []) {
  if (m === null || m === undefined) return null;
  /** @type {Record<string, any>} */
  const out = {};
  for (const [key, value] of Object.entries(m)) if (!key.startsWith('_')) out[key] = value;
  for (const key of optional) out[key] = m[key] ?? null;
  return out;
}

const EMPTY_OUTPUT = { text: '', totalBytes: 0, truncated: false };

/** @returns {CellResult} */
function cellResult(/** @type {any} */ m) {
  return {
    status: m.status,
    stdout: m.stdout ?? { ...EMPTY_OUTPUT },
    stderr: m.stderr ?? { ...EMPTY_OUTPUT },
    error: m.error ?? null,
    final: m.final ?? null,
    finalTruncated: m.finalTruncated,
    durationS: m.durationS,
  };
}

/** @returns {RunMetadata | null} */
const metadata = (/** @type {any} */ m) => plain(m, ['costUsd']);

/** @returns {RunResult} */
function runResult(/** @type {any} */ m) {
  return {
    runId: m.runId,
    status: m.status,
    answer: m.answer ?? null,
    error: m.error,
    metadata: metadata(m.metadata),
    trajectory: m.trajectoryJson ? JSON.parse(m.trajectoryJson) : null,
  };
}

/** @returns {RunSummary} */
const runSummary = (/** @type {any} */ m) =>
  /** @type {RunSummary} */ (plain(m, ['answer', 'endedUnix', 'costUsd']));

/** @returns {ContextInfo} */
const contextInfo = (/** @type {any} */ m) => /** @type {ContextInfo} */ (plain(m));

/** @returns {RunEvent} */
function runEvent(/** @type {any} */ m) {
  const type = m.kind; // the RunEvent field that is set; SubCall* messages have a `kind` field of their own
  if (type === 'result') return { type, runId: m.runId, result: runResult(m.result) };
  const body = m[type] ?? {};
  if (type === 'cellFinished') {
    return { type, runId: m.runId, depth: body.depth, cell: plain(body.cell, ['error', 'final']) };
  }
  return { ...plain(body, type === 'subcallFinished' ? ['error'] : []), type, runId: m.runId };
}

/** @param {ContextChoice} choice */
function contextRef({ context, contextId } = {}) {
  if ((context === undefined) === (contextId === undefined)) {
    throw new TypeError('give exactly one of context (a text, a list of texts, a map) and contextId');
  }
  if (contextId !== undefined) return { contextId };
  if (typeof context === 'string') return { text: context };
  if (Array.isArray(context)) return { texts: { items: context } };
  if (context && typeof context === 'object') return { files: { items: context } };
  throw new TypeError('context must be a string, an array of strings or an object of name -> string');
}

// ---- the client -----------------------------------------------------------------------------------

export class RLMClient {
  /**
   * @param {string} address host:port of `rlm serve`, e.g. "127.0.0.1:50051"
   * @param {string} apiKey the tenant's key (`rlm tenants add` prints it): sent as a Bearer token
   * @param {{ca?: string | Buffer, cert?: string | Buffer, key?: string | Buffer, protoPath?: string,
   *   deadlineMs?: number, channelOptions?: Record<string, any>}} [options]
   *   ca: the server's CA (TLS; PEM text, bytes or a path); cert and key: this client's (mTLS);
   *   deadlineMs: the default deadline of every call (none by default: a run may take long)
   */
  constructor(address, apiKey, options = {}) {
    if (!apiKey) throw new TypeError('an API key is required');
    const { ca, cert, key, protoPath, deadlineMs, channelOptions } = options;
    const Service = loadService(protoPath);
    const credentials =
      ca !== undefined || cert !== undefined
        ? grpc.credentials.createSsl(pem(ca), pem(key), pem(cert))
        : grpc.credentials.createInsecure();
    this._stub = new Service(address, credentials, {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      ...channelOptions,
    });
    this._authorization = `Bearer ${apiKey}`;
    this._deadlineMs = deadlineMs;
  }

  /** Closes the channel; calls in flight are cancelled. */
  close() {
    this._stub.close();
  }

  _metadata() {
    const md = new grpc.Metadata();
    md.set('authorization', this._authorization);
    return md;
  }

  /** @param {CallOptions} [options] */
  _callOptions(options = {}) {
    const ms = options.deadlineMs ?? this._deadlineMs;
    return ms === undefined ? {} : { deadline: new Date(Date.now() + ms) };
  }

  /** @param {string} method @param {any} request @param {CallOptions} [options] @returns {Promise<any>} */
  _unary(method, request, options) {
    return new Promise((resolve, reject) => {
      this._stub[method](
        request,
        this._metadata(),
        this._callOptions(options),
        (/** @type {any} */ err, /** @type {any} */ reply) => (err ? reject(toError(err)) : resolve(reply)),
      );
    });
  }

  /** @param {string} method @param {any} request @param {CallOptions} [options] @returns {AsyncGenerator<any>} */
  async *_serverStream(method, request, options) {
    const call = this._stub[method](request, this._metadata(), this._callOptions(options));
    let done = false;
    try {
      for await (const message of call) yield message;
      done = true;
    } catch (err) {
      done = true;
      throw toError(err);
    } finally {
      if (!done) call.cancel(); // the consumer stopped early: the server stops the work
    }
  }

  /**
   * Code once, in a fresh sandbox over a context; the sandbox is removed when the cell ends.
   * @param {string} code Python source
   * @param {ContextChoice & {sandbox?: SandboxOptions} & CallOptions} options
   * @returns {Promise<CellResult>}
   */
  async execute(code, options = {}) {
    const reply = await this._unary(
      'Execute',
      { code, context: contextRef(options), sandbox: options.sandbox ?? {} },
      options,
    );
    return cellResult(reply.result);
  }

  /**
   * As execute, streamed: {type: 'output', stream, text} as the code writes, then {type: 'result', result}.
   * @param {string} code
   * @param {ContextChoice & {sandbox?: SandboxOptions} & CallOptions} options
   * @returns {AsyncGenerator<{type: 'output', stream: string, text: string} | {type: 'result', result: CellResult}>}
   */
  async *executeStream(code, options = {}) {
    const request = { code, context: contextRef(options), sandbox: options.sandbox ?? {} };
    for await (const m of this._serverStream('ExecuteStream', request, options)) {
      if (m.kind === 'output') {
        yield {
          type: 'output',
          stream: m.output.stream === 'OUTPUT_STREAM_STDERR' ? 'stderr' : 'stdout',
          text: m.output.text,
        };
      } else if (m.kind === 'result') {
        yield { type: 'result', result: cellResult(m.result) };
      }
    }
  }

  /**
   * A REPL session on one sandbox: variables live from one runCell to the next.
   * @param {ContextChoice & {sandbox?: SandboxOptions} & CallOptions} options
   * @returns {Promise<SessionInfo>}
   */
  async openSession(options = {}) {
    return this._unary(
      'OpenSession',
      { context: contextRef(options), sandbox: options.sandbox ?? {} },
      options,
    );
  }

  /**
   * One cell in the session.
   * @param {string} sessionId
   * @param {string} code
   * @param {{timeoutS?: number, maxOutputBytes?: number} & CallOptions} [options] may lower the session's
   * @returns {Promise<CellResult>}
   */
  async runCell(sessionId, code, options = {}) {
    const { timeoutS, maxOutputBytes } = options;
    const reply = await this._unary('RunCell', { sessionId, code, timeoutS, maxOutputBytes }, options);
    return cellResult(reply.result);
  }

  /** @param {string} sessionId @param {CallOptions} [options] @returns {Promise<void>} */
  async closeSession(sessionId, options) {
    await this._unary('CloseSession', { sessionId }, options);
  }

  /** @param {string} query @param {ContextChoice & {options?: RunOptions, sandbox?: SandboxOptions}} o */
  _runRequest(query, o) {
    return { query, context: contextRef(o), options: o.options ?? {}, sandbox: o.sandbox ?? {} };
  }

  /**
   * One RLM run to its end.
   * @param {string} query
   * @param {ContextChoice & {options?: RunOptions, sandbox?: SandboxOptions} & CallOptions} options
   * @returns {Promise<RunResult>}
   */
  async run(query, options = {}) {
    return runResult(await this._unary('Run', this._runRequest(query, options), options));
  }

  /**
   * One RLM run, its events as they happen: {type: 'accepted', runId} first, the engine's events, then
   * {type: 'result', runId, result}. Leaving the loop early cancels the call, and so the run.
   * @param {string} query
   * @param {ContextChoice & {options?: RunOptions, sandbox?: SandboxOptions} & CallOptions} options
   * @returns {AsyncGenerator<RunEvent>}
   */
  async *runStream(query, options = {}) {
    for await (const m of this._serverStream('RunStream', this._runRequest(query, options), options)) {
      if (m.kind) yield runEvent(m);
    }
  }

  /**
   * A run of this tenant from the run store (a running one too).
   * @param {string} runId
   * @param {{includeTrajectory?: boolean} & CallOptions} [options]
   * @returns {Promise<RunInfo>}
   */
  async getRun(runId, options = {}) {
    const reply = await this._unary(
      'GetRun',
      { runId, includeTrajectory: Boolean(options.includeTrajectory) },
      options,
    );
    return {
      run: runSummary(reply.run),
      metadata: metadata(reply.metadata),
      trajectory: reply.trajectoryJson ? JSON.parse(reply.trajectoryJson) : null,
    };
  }

  /**
   * This tenant's runs, newest first.
   * @param {{pageSize?: number, pageToken?: string, statuses?: string[], createdAfterUnix?: number,
   *   createdBeforeUnix?: number} & CallOptions} [options] statuses: e.g. ["RUN_STATUS_COMPLETED"]
   * @returns {Promise<RunPage>}
   */
  async listRuns(options = {}) {
    const { pageSize = 0, pageToken = '', statuses = [], createdAfterUnix, createdBeforeUnix } = options;
    const reply = await this._unary(
      'ListRuns',
      { pageSize, pageToken, statuses, createdAfterUnix, createdBeforeUnix },
      options,
    );
    return { runs: reply.runs.map(runSummary), nextPageToken: reply.nextPageToken };
  }

  /**
   * Stops a running run; its status once it stopped ("RUN_STATUS_CANCELLED", or how it had ended).
   * @param {string} runId @param {CallOptions} [options] @returns {Promise<string>}
   */
  async cancelRun(runId, options) {
    return (await this._unary('CancelRun', { runId }, options)).status;
  }

  /**
   * Stores a context for this tenant from a tar archive (optionally gzip), streamed in 1 MiB chunks.
   * @param {Buffer | Uint8Array} tarBuffer the archive's bytes
   * @param {string} name a label for people (1-200 characters)
   * @param {CallOptions} [options]
   * @returns {Promise<ContextInfo>}
   */
  uploadContext(tarBuffer, name, options) {
    const bytes = Buffer.from(tarBuffer.buffer, tarBuffer.byteOffset, tarBuffer.byteLength);
    return new Promise((resolve, reject) => {
      const call = this._stub.UploadContext(
        this._metadata(),
        this._callOptions(options),
        (/** @type {any} */ err, /** @type {any} */ reply) =>
          err ? reject(toError(err)) : resolve(contextInfo(reply)),
      );
      const write = async () => {
        call.write({ header: { name } });
        for (let at = 0; at < bytes.length; at += UPLOAD_CHUNK_BYTES) {
          if (!call.write({ chunk: bytes.subarray(at, at + UPLOAD_CHUNK_BYTES) })) {
            await new Promise((drained) => call.once('drain', drained));
          }
        }
        call.end();
      };
      write().catch((err) => {
        call.cancel();
        reject(err);
      });
    });
  }

  /**
   * This tenant's contexts, oldest first, and the bytes they take against its context_bytes quota.
   * @param {CallOptions} [options] @returns {Promise<{contexts: ContextInfo[], bytesUsed: number}>}
   */
  async listContexts(options) {
    const reply = await this._unary('ListContexts', {}, options);
    return { contexts: reply.contexts.map(contextInfo), bytesUsed: reply.bytesUsed };
  }

  /** @param {string} contextId @param {CallOptions} [options] @returns {Promise<void>} */
  async deleteContext(contextId, options) {
    await this._unary('DeleteContext', { contextId }, options);
  }
}
