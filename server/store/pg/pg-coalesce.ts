/**
 * A turn's writes as fewer statements. The store writes a row at a time, and a turn of 50 results queues some 150
 * statements, mostly the same few texts one after another (a task's new status, a replica, its outputs, the task's
 * result). PostgreSQL parses, plans and runs each statement of a text on its own, and that per-statement cost was most
 * of the database's CPU per result. Runs of the same INSERT or UPDATE text become one statement of many rows:
 *
 * - `INSERT INTO t (cols) VALUES (...) [ON CONFLICT ...]` -> one INSERT with a VALUES row each. Under
 *   `ON CONFLICT (key) DO UPDATE` a key may be touched once per statement, so a key seen again starts a new one.
 * - `UPDATE t SET c = $n, d = d + $m WHERE id = $1` -> `UPDATE t SET c = v.c, d = t.d + v.d FROM (VALUES ...) v
 *   WHERE t.id = v.id`. A first VALUES row of typed nulls (`(NULL::t).c`: the column's own type) gives the columns
 *   their types, since the values are sent as literals of no type. An id seen again starts a new statement (an UPDATE
 *   meets a row once, so the second would be lost).
 *
 * A statement joins the latest statement of its text when nothing between them writes its table: a turn writes a row
 * of each table per result (a replica, its outputs, its task, the task's result, the volunteer), one result after
 * another, and these become one statement per table. Moving a write past writes to other tables changes nothing: the
 * statements that merge read no other table, and the tables have no triggers and no foreign keys between them. A
 * statement of another shape passes as it is, and nothing moves past it.
 */
import type { Statement } from './pg-sync.js';

type Shape =
  | { kind: 'insert'; table: string; head: string; tuple: string; tail: string; keyAt: number[] }
  | { kind: 'update'; table: string; sets: { col: string; add: boolean; n: number }[] };

const INSERT = /^(INSERT INTO (\w+) \(([\w, ]+)\)) VALUES \(([^()]*)\)(\s*(?:ON CONFLICT \(([\w, ]+)\) DO (?:NOTHING|UPDATE SET [\s\S]*))?\s*)$/;
const UPDATE = /^UPDATE (\w+) SET ([\w\s=$+,]+) WHERE id = \$1$/;
const SET = /^(\w+) = (?:(\w+) \+ )?\$(\d+)$/;
const PLACEHOLDER = /^\$(\d+)$/;

/** Shapes by statement text (a store writes few distinct texts); null: not one that merges. */
const shapes = new Map<string, Shape | null>();

function shapeOf(text: string): Shape | null {
  let shape = shapes.get(text);
  if (shape !== undefined) return shape;
  shape = parse(text);
  if (shapes.size < 1_000) shapes.set(text, shape);
  return shape;
}

function parse(text: string): Shape | null {
  const ins = INSERT.exec(text);
  if (ins) {
    const [, head, table, cols, tuple, tail, conflict] = ins;
    const columns = cols!.split(',').map((c) => c.trim());
    const items = tuple!.split(',').map((v) => v.trim());
    if (items.length !== columns.length) return null;
    // Under DO UPDATE, the conflict key's values tell rows apart: each must be a value sent, not a constant.
    const keyAt: number[] = [];
    if (conflict && /DO UPDATE/.test(tail!)) {
      for (const c of conflict.split(',').map((k) => k.trim())) {
        const m = PLACEHOLDER.exec(items[columns.indexOf(c)] ?? '');
        if (!m) return null;
        keyAt.push(Number(m[1]) - 1);
      }
    }
    return { kind: 'insert', table: table!, head: head!, tuple: tuple!, tail: tail!, keyAt };
  }
  const up = UPDATE.exec(text);
  if (up) {
    const sets: { col: string; add: boolean; n: number }[] = [];
    for (const part of up[2]!.split(',')) {
      const m = SET.exec(part.trim());
      if (!m || (m[2] !== undefined && m[2] !== m[1]) || m[3] === '1') return null;
      sets.push({ col: m[1]!, add: m[2] !== undefined, n: Number(m[3]) });
    }
    return { kind: 'update', table: up[1]!, sets };
  }
  return null;
}

/** What tells a statement's row apart from the others in a merged statement (null: nothing to tell apart). */
function keyOf(shape: Shape, values: unknown[]): string | null {
  const at = shape.kind === 'update' ? [0] : shape.keyAt;
  if (at.length === 0) return null;
  return at.map((i) => String(values[i])).join('\u0000');
}

/** One statement for `group` (two or more of the same text). */
function merge(shape: Shape, group: Statement[]): Statement {
  const values: unknown[] = [];
  const rows: string[] = [];
  if (shape.kind === 'insert') {
    for (const st of group) {
      const base = values.length;
      values.push(...st.values!);
      rows.push(`(${shape.tuple.replace(/\$(\d+)/g, (_, n: string) => `$${base + Number(n)}`)})`);
    }
    return { text: `${shape.head} VALUES ${rows.join(', ')}${shape.tail}`, values };
  }
  const { table, sets } = shape;
  const cols = ['id', ...sets.map((s) => s.col)];
  rows.push(`(${cols.map((c) => `(NULL::${table}).${c}`).join(', ')})`);
  for (const st of group) {
    const v = st.values!;
    const at = [1, ...sets.map((s) => s.n)];
    rows.push(`(${at.map((n) => `$${values.push(v[n - 1])}`).join(', ')})`);
  }
  const assign = sets.map((s) => (s.add ? `${s.col} = t.${s.col} + v.${s.col}` : `${s.col} = v.${s.col}`)).join(', ');
  return { text: `UPDATE ${table} AS t SET ${assign} FROM (VALUES ${rows.join(', ')}) AS v(${cols.join(', ')}) WHERE t.id = v.id`, values };
}

/** Statements of one text on their way to being one; `shape` null: one statement that merges with nothing. */
interface Group { text: string; shape: Shape | null; members: Statement[]; keys: Set<string> }

/**
 * `statements` with the INSERTs and UPDATEs of one text among the first `upTo` merged (see above); `upTo` counted
 * again over the result (the statements after it pass untouched).
 */
export function coalesce(statements: Statement[], upTo: number): { statements: Statement[]; upTo: number } {
  const groups: Group[] = [];
  for (let i = 0; i < upTo; i++) {
    const st = statements[i]!;
    const shape = st.values ? shapeOf(st.text) : null;
    const key = shape && keyOf(shape, st.values!);
    let joined = false;
    // The latest group of its text, unless a statement between writes its table (or cannot be read).
    for (let g = groups.length - 1; shape && g >= 0; g--) {
      const group = groups[g]!;
      if (!group.shape) break;
      if (group.text === st.text) {
        if (key === null || !group.keys.has(key)) {
          group.members.push(st);
          if (key !== null) group.keys.add(key);
          joined = true;
        }
        break;
      }
      if (group.shape.table === shape.table) break;
    }
    if (!joined) groups.push({ text: st.text, shape, members: [st], keys: new Set(key === null ? [] : [key]) });
  }
  const out = groups.map((g) => (g.members.length > 1 ? merge(g.shape!, g.members) : g.members[0]!));
  const merged = out.length;
  for (let k = upTo; k < statements.length; k++) out.push(statements[k]!);
  return { statements: out, upTo: merged };
}
