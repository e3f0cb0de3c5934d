/**
 * Known-answer tasks' answers, kept once read: every probe a newcomer returns is judged against one, and on a
 * networked store each read is a round trip. Bounded: past the limit they are all let go and read again as needed.
 */
const LIMIT_BYTES = 64 * 2 ** 20;

export class KnownAnswers {
  private readonly answers = new Map<string, Uint8Array>();
  private bytes = 0;

  get(taskId: string): Uint8Array | undefined {
    return this.answers.get(taskId);
  }

  set(taskId: string, answer: Uint8Array): void {
    this.bytes += answer.byteLength;
    if (this.bytes > LIMIT_BYTES) { this.answers.clear(); this.bytes = answer.byteLength; }
    this.answers.set(taskId, answer);
  }

  /** A task's result changed: what was kept of it is stale. */
  forget(taskId: string): void {
    this.answers.delete(taskId);
  }
}
