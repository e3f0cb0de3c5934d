/**
 * A throwaway PostgreSQL 15 cluster for tests: initdb into a temporary folder (as the `postgres` user when run as
 * root, since PostgreSQL refuses to run as root), pg_ctl on a free port, removed by `stop()`. Debian's package puts
 * the programs in /usr/lib/postgresql/15/bin (`.ci/run` installs it); PG_BIN overrides that.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PgCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** A fresh database in the cluster; resolves to its URL. */
  createDatabase(name: string): string;
  /** Stops the database at once, as a crash would (`immediate`), and starts it again on the same port. */
  restart(): void;
  /** Stops the cluster at once (`immediate`: as a crash would) and removes its folder. */
  stop(): void;
}

/** Whether PostgreSQL's programs are installed here. */
export const havePostgres = () => fs.existsSync(path.join(PG_BIN, 'initdb'));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Runs a PostgreSQL program, as the postgres user when this process is root. */
function runAs(program: string, args: string[]): string {
  const bin = path.join(PG_BIN, program);
  const root = process.getuid?.() === 0;
  return root
    ? execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', [bin, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')], { encoding: 'utf8' })
    : execFileSync(bin, args, { encoding: 'utf8' });
}

export async function startPgCluster(): Promise<PgCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-pg-'));
  fs.chmodSync(dir, 0o777);
  const data = path.join(dir, 'data');
  const port = await freePort();
  runAs('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  // Sockets in the cluster's own folder; fsync off: a test cluster is thrown away, never recovered.
  const start = () => runAs('pg_ctl', ['-D', data, '-w', '-l', path.join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start']);
  start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url, port,
    createDatabase(name) {
      runAs('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-q', '-c', `CREATE DATABASE "${name}"`]);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    restart() {
      runAs('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      start();
    },
    stop() {
      try {
        runAs('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch { /* already stopped */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
