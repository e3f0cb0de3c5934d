/**
 * A synchronous PostgreSQL connection: the queries run on a `pg` client in a worker thread while the calling thread
 * waits on a shared flag (Atomics.wait), so the Store interface, synchronous as better-sqlite3 is, fits a networked
 * engine. Each call is one round trip to the worker however many statements it carries: the store sends a turn's
 * writes together at its commit. What comes back is copied (structured clone), rows as plain objects, bytea as
 * Uint8Array, int8 as numbers (times in ms and counts stay far below 2^53).
 *
 * A call may also be posted without waiting (`post`: a commit the caller need not wait for); the connection runs
 * calls in the order they were made, so a later call sees what an earlier one wrote. Its outcome is told to its
 * callback on a later turn of the event loop, or by `settle`, which waits for every posted call.
 */
import { createRequire } from 'node:module';
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';

export interface Statement { text: string; values?: unknown[] }
/** Statements to send as texts of their own, with their values written in: how many (one text), or each text's length. */
export type Inline = number | readonly number[];

/** What a failed statement said: PostgreSQL's SQLSTATE (`code`) when it came from the server. */
export class PgError extends Error {
  /** `index`: the failed statement's place in its call's list (those before it ran). */
  constructor(message: string, readonly code: string | undefined, readonly statement: string, readonly index = 0) {
    super(message);
  }
}

type Reply = ({ ok: true; rows: Record<string, unknown>[][] } | { ok: false; message: string; code?: string; index: number }) & { conn: number; id: number };

/** What a posted call is told: null and each statement's rows once it ran, else why it failed. */
export type Posted = (err: Error | null, rows?: Record<string, unknown>[][]) => void;

// The worker's code, as a string so the same file runs under tsx, vitest and the compiled build alike.
const WORKER = `
const { workerData } = require('node:worker_threads');
const { createRequire } = require('node:module');
const req = createRequire(workerData.requireFrom);
const pg = req('pg');
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));
const { prepareValue, escapeLiteral } = req('pg/lib/utils');
const { port, flag, url, beat } = workerData;
// A value written into the statement's text: a literal of unknown type, which PostgreSQL resolves from where it stands
// as it would a parameter's.
const literal = (v) => {
  if (v === null || v === undefined) return 'NULL';
  const p = prepareValue(v);
  if (p === null) return 'NULL';
  if (Buffer.isBuffer(p)) return "'\\\\x" + p.toString('hex') + "'";
  return escapeLiteral(String(p));
};
const inlined = (st) => (st.values && st.values.length ? st.text.replace(/\\$(\\d+)/g, (_, n) => literal(st.values[Number(n) - 1])) : st.text);
// A lost connection is made again on the next call, as connection number conn + 1. A call made for a transaction
// begun on an earlier connection is refused rather than run: on a new connection it would commit on its own.
let client = null;
let ready = null;
let broken = null;
let conn = 0;
const connect = () => {
  broken = null;
  conn++;
  client = new pg.Client({ connectionString: url });
  client.on('error', (err) => { broken = err; });
  ready = client.connect();
};
connect();
// Each answer counts up the shared flag, which a waiting caller watches.
let current = 0;
let answered = -1;
const answer = (reply) => {
  if (answered === current) return;
  answered = current;
  port.postMessage({ ...reply, conn, id: current });
  Atomics.add(flag, 0, 1);
  Atomics.notify(flag, 0);
};
// Whatever goes wrong here is the connection's (the next call connects again), and is told to the call in hand.
// The call in hand is over then: the next one need not wait for it to come back.
let over = () => {};
const fail = (err) => { broken = err || new Error('unknown'); answer({ ok: false, message: String(broken.message || broken), code: broken.code, index: 0 }); over(); };
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
// Calls run one after another, in the order they came (a posted one does not wait for its caller).
let tail = Promise.resolve();
port.on('message', (msg) => {
  tail = tail.then(() => new Promise((resolve) => { over = resolve; handle(msg).then(resolve, resolve); }));
});
const handle = async ({ id, statements, expect, inline, rollbackOnFailure }) => {
  current = id;
  const rows = [];
  let i = 0;
  let failedAt = -1;
  try {
    if (broken) { client.end().catch(() => {}); connect(); }
    if (expect !== undefined && expect !== conn) {
      answer({ ok: false, message: 'the connection to PostgreSQL was lost in the middle of a transaction', code: '08003', index: 0 });
      return;
    }
    try {
      await ready;
    } catch (err) {
      broken = err;
      throw err;
    }
    // Each of the first stretches (\`inline\`: their lengths, or one length) as one text, one round trip to the database
    // (the extended protocol sends each statement and waits for it). A failure in a stretch is reported at its start,
    // or just past it when it begins with a SAVEPOINT (which was made: a failure is the statements' after it).
    const one = async () => {
      const res = await client.query({ text: statements[i].text, values: statements[i].values, rowMode: undefined });
      // Text with several statements (no values: the simple protocol) gives one result each: the last one's rows.
      const r = Array.isArray(res) ? res[res.length - 1] : res;
      rows.push(r.rows.map((row) => { for (const k in row) if (Buffer.isBuffer(row[k])) row[k] = new Uint8Array(row[k]); return row; }));
      i++;
    };
    const stretches = Array.isArray(inline) ? inline : inline ? [inline] : [];
    for (const length of stretches) {
      const n = Math.min(length, statements.length - i);
      if (n <= 0) break;
      if (n === 1) { await one(); continue; }
      failedAt = statements[i].text.startsWith('SAVEPOINT ') ? i + 1 : i;
      await client.query(statements.slice(i, i + n).map(inlined).join(';\\n'));
      failedAt = -1;
      for (const end = i + n; i < end; i++) rows.push([]);
    }
    while (i < statements.length) await one();
    answer({ ok: true, rows });
  } catch (err) {
    // A posted commit that failed leaves no transaction open behind it: the calls after it run outside one.
    if (rollbackOnFailure && client && !broken) await client.query('ROLLBACK').catch(() => {});
    answer({ ok: false, message: String(err && err.message || err), code: err && err.code, index: failedAt >= 0 ? failedAt : Math.min(i, statements.length - 1) });
  }
};
// A statement run every beat.ms on this thread, whatever the caller's thread is doing (a heartbeat: a server whose
// thread is busy with a long piece of work is alive). It waits its turn behind the calls in hand, as the client would
// have it wait anyway (one query at a time; \`pg\` deprecates a query issued while another runs), one beat at most
// queued. Its failures are the next call's to find.
if (beat) {
  let queued = false;
  setInterval(() => {
    if (queued) return;
    queued = true;
    tail = tail.then(() => {
      queued = false;
      if (client && !broken) return client.query(beat.text, beat.values).catch(() => {});
    });
  }, beat.ms).unref();
}
port.on('close', () => { if (client) client.end().catch(() => {}); });
`;

export class PgSync {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private closed = false;
  private ids = 0;
  /** The last call posted (calls are answered in order: once it is, all are). */
  private lastPosted = 0;
  /** Posted calls not yet answered, by id, in order. */
  private readonly posted = new Map<number, { callback: Posted; statement: string }>();
  /** Posted calls answered while a caller waited for its own, to be told on a later turn. */
  private readonly told: [Posted, Error | null, Record<string, unknown>[][] | undefined][] = [];
  private telling = false;
  /** Calls made so far (each one round trip), for tests and metrics of how well writes are batched. */
  roundTrips = 0;

  /**
   * `timeoutMs` bounds one call: a database that does not answer in time makes the call throw. `beat`: a statement
   * the connection's thread runs every `ms` on its own (a heartbeat that a busy caller does not hold up).
   */
  constructor(readonly url: string, private readonly timeoutMs = 30_000, beat?: Statement & { ms: number }) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER, {
      eval: true,
      workerData: { port: port2, flag: this.flag, url, beat, requireFrom: createRequire(import.meta.url).resolve('pg') },
      transferList: [port2],
    });
    this.worker.unref();
    // Answers to posted calls that arrive while nobody waits.
    this.port.on('message', (reply: Reply) => this.answered(reply));
    this.port.unref();
    // Connecting happens on the first call; this one fails fast with the reason when the database is not there.
    this.query('SELECT 1');
  }

  /** Runs one statement and returns its rows. */
  query<T = Record<string, unknown>>(text: string, values?: unknown[]): T[] {
    return this.run([{ text, values }])[0] as T[];
  }

  /** The connection the last call ran on (numbered from 1; a new number after the database was reached again). */
  connection = 0;

  /**
   * Runs statements in order in one round trip and returns each one's rows; stops at the first that fails and throws.
   * With `expect`, they run only on that connection (the one a transaction began on); on another the call throws.
   * `inline`: the first `inline` statements have their values written into their text and go as one text in one round
   * trip to the database; no rows come back for them, and a failure among them is reported at index 0. For writes.
   * Several lengths: one text for each stretch in turn, a failure reported at the stretch's start (past it when it
   * begins with a SAVEPOINT, which was made).
   */
  run(statements: Statement[], expect?: number, inline: Inline = 0): Record<string, unknown>[][] {
    if (this.closed) throw new Error('the PostgreSQL connection is closed');
    if (statements.length === 0) return [];
    const id = this.send(statements, expect, inline, false);
    const reply = this.wait(id, statements[0]!.text);
    this.connection = reply.conn;
    if (!reply.ok) throw new PgError(reply.message, reply.code, statements[reply.index]!.text, reply.index);
    return reply.rows;
  }

  /**
   * Runs statements as `run` does (with `expect` and `inline`), without waiting: `callback` is told the outcome on a
   * later turn, or by `settle`. A failure rolls back the transaction they were in, so the calls after them run outside
   * it. For a commit whose caller need not wait.
   */
  post(statements: Statement[], callback: Posted, expect?: number, inline: Inline = 0): void {
    if (this.closed) throw new Error('the PostgreSQL connection is closed');
    const id = this.send(statements, expect, inline, true);
    this.posted.set(id, { callback, statement: statements[0]?.text ?? '' });
    this.lastPosted = id;
  }

  /** Runs statements without waiting (as `post`, outside any transaction) and resolves to each one's rows. */
  ask(statements: Statement[]): Promise<Record<string, unknown>[][]> {
    return new Promise((resolve, reject) => this.post(statements, (err, rows) => (err ? reject(err) : resolve(rows!))));
  }

  /** Waits for every posted call and tells each its outcome, in order. */
  settle(): void {
    const last = this.posted.get(this.lastPosted);
    if (last && !this.closed) {
      try {
        this.wait(this.lastPosted, last.statement);
      } catch { /* timed out: the connection is closed, and the calls failed with it */ }
    }
    this.tell();
  }

  private send(statements: Statement[], expect: number | undefined, inline: Inline, rollbackOnFailure: boolean): number {
    this.roundTrips++;
    const id = ++this.ids;
    this.port.postMessage({ id, statements, expect, inline, rollbackOnFailure });
    return id;
  }

  /** Waits for call `id`'s answer; answers to posted calls met on the way are kept to be told. */
  private wait(id: number, statement: string): Reply {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.flag, 0);
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
        const reply = m.message as Reply;
        if (reply.id === id && !this.posted.has(id)) return reply;
        this.answered(reply, true);
        if (reply.id === id) return reply;
      }
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.flag, 0, seen, left) === 'timed-out') {
        this.close();
        throw new Error(`PostgreSQL did not answer within ${this.timeoutMs} ms (${statement.slice(0, 60)}...)`);
      }
    }
  }

  /** An answer to a posted call: told now, or (`later`) after what is running now. */
  private answered(reply: Reply, later = false): void {
    const p = this.posted.get(reply.id);
    if (!p) return; // a call that timed out long ago
    this.posted.delete(reply.id);
    this.connection = reply.conn;
    if (reply.ok) this.told.push([p.callback, null, reply.rows]);
    else this.told.push([p.callback, new PgError(reply.message, reply.code, p.statement, reply.index), undefined]);
    if (!later) this.tell();
    else if (!this.telling) {
      this.telling = true;
      setImmediate(() => this.tell());
    }
  }

  private tell(): void {
    this.telling = false;
    while (this.told.length > 0) {
      const [callback, err, rows] = this.told.shift()!;
      callback(err, rows);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const lost = new Error('the PostgreSQL connection was closed before the call was answered');
    for (const p of this.posted.values()) this.told.push([p.callback, lost, undefined]);
    this.posted.clear();
    this.port.close();
    void this.worker.terminate();
  }
}
