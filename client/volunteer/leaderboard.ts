/**
 * The public leaderboard (`GET /api/v1/leaderboard`): volunteers, teams and the sites whose widget brought
 * the work in. Credit is granted by the server only for verified work, to the volunteer and to the site.
 */

export interface Leaderboard {
  volunteers: { name: string; team: string | null; credit: number; tasks: number }[];
  teams: { team: string; credit: number; volunteers: number }[];
  sites: { origin: string; credit: number; tasks: number }[];
}

export async function fetchLeaderboard(serverUrl: string, limit = 10): Promise<Leaderboard> {
  const res = await fetch(new URL(`/api/v1/leaderboard?limit=${limit}`, serverUrl));
  if (!res.ok) throw new Error(`leaderboard: HTTP ${res.status}`);
  return (await res.json()) as Leaderboard;
}

/** "1,234" or "12.5": credit is items of accepted work, possibly fractional for split tasks. */
export function formatCredit(credit: number): string {
  return credit.toLocaleString('en-US', { maximumFractionDigits: 1 });
}

type Cell = string | { text: string; num: true };

function rows(doc: Document, body: HTMLElement, data: Cell[][], empty: string, highlight: (i: number) => boolean): void {
  if (data.length === 0) {
    const tr = doc.createElement('tr');
    tr.className = 'empty';
    const td = doc.createElement('td');
    td.colSpan = 4;
    td.textContent = empty;
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...data.map((cells, i) => {
    const tr = doc.createElement('tr');
    if (highlight(i)) tr.className = 'me';
    for (const c of [String(i + 1), ...cells]) {
      const td = doc.createElement('td');
      if (typeof c === 'string') td.textContent = c;
      else { td.textContent = c.text; td.className = 'num'; }
      tr.append(td);
    }
    return tr;
  }));
}

export interface BoardBodies { volunteers: HTMLElement; teams: HTMLElement; sites: HTMLElement }

/** Fills the three tables; the volunteer's own row (by rank) and team are highlighted. */
export function renderLeaderboard(doc: Document, bodies: BoardBodies, lb: Leaderboard, me: { rank?: number; team?: string | null } = {}): void {
  const num = (n: number) => ({ text: formatCredit(n), num: true as const });
  rows(doc, bodies.volunteers, lb.volunteers.map((v) => [v.name, v.team ?? '', num(v.credit)]), 'No verified work yet.', (i) => me.rank === i + 1);
  rows(doc, bodies.teams, lb.teams.map((t) => [t.team, { text: String(t.volunteers), num: true }, num(t.credit)]), 'No teams yet: set one above.', (i) => !!me.team && lb.teams[i]!.team === me.team);
  rows(doc, bodies.sites, lb.sites.map((s) => [s.origin.replace(/^https?:\/\//, ''), { text: String(s.tasks), num: true }, num(s.credit)]), 'No site has embedded the widget yet.', () => false);
}
