/**
 * The last few problems, newest first, for the page's error list. A repeat of the newest message
 * (a server that stays unreachable) bumps its count instead of filling the list.
 */

export interface RecentError { at: number; message: string; count: number }

export class RecentErrors {
  private readonly items: RecentError[] = [];

  constructor(private readonly max = 12) {}

  add(message: string, at: number = Date.now()): void {
    const newest = this.items[0];
    if (newest && newest.message === message) {
      newest.count += 1;
      newest.at = at;
      return;
    }
    this.items.unshift({ at, message, count: 1 });
    if (this.items.length > this.max) this.items.length = this.max;
  }

  list(): RecentError[] {
    return this.items.map((e) => ({ ...e }));
  }
}
