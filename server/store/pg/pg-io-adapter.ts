/**
 * socket.io's Postgres adapter on the shared database: messages between servers go by LISTEN/NOTIFY, payloads
 * past PostgreSQL's 8,000-byte NOTIFY limit through a table of attachments (created here if missing). No Redis.
 */
import { createAdapter } from '@socket.io/postgres-adapter';
import pg from 'pg';

export interface PgIoAdapter {
  adapter: ReturnType<typeof createAdapter>;
  close(): Promise<void>;
}

export async function pgIoAdapter(url: string): Promise<PgIoAdapter> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // A connection the database dropped is an event, not a crash of the server: idle ones report it on the pool, the
  // one the adapter holds for LISTEN on the client itself (the adapter sees its end and connects again).
  pool.on('error', () => {});
  pool.on('connect', (client) => { client.on('error', () => {}); });
  await pool.query(`CREATE TABLE IF NOT EXISTS socket_io_attachments (id bigserial UNIQUE, created_at timestamptz DEFAULT NOW(), payload bytea)`);
  return {
    adapter: createAdapter(pool, { heartbeatInterval: 2000, heartbeatTimeout: 6000 }),
    // end() waits for every client to come back to the pool: the adapter's LISTEN client, made again after a lost
    // connection, may not; a stopping server does not wait for it longer than a moment.
    close: () => Promise.race([pool.end(), new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]),
  };
}
