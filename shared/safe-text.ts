/**
 * Text from strangers (a volunteer's error report, a job name) shown to someone else: control characters and
 * bidirectional overrides are written as visible escapes, so they cannot move a terminal's cursor, recolour it,
 * hide text or reorder what a researcher reads.
 */

/** C0 and C1 controls, DEL, and the Unicode bidi controls and isolates. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Escapes what a terminal or a page would act on instead of showing: `\x1b` becomes `\u001b`. */
export function safeText(s: string, maxLength = 2000): string {
  const cut = s.length > maxLength ? `${s.slice(0, maxLength)}…` : s;
  return cut.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
