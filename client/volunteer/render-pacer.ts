/**
 * Paces a page's redraws: many status changes become at most one redraw per interval, drawn in an animation
 * frame. Drawing is not free (style, layout, paint, and in a software-composited browser the frame itself),
 * and a working tab changes status several times per task; a few redraws a second are all a person reads.
 */
export function pacedRender(render: () => void, minIntervalMs = 250, now: () => number = () => performance.now()): () => void {
  let pending = false;
  let last = -Infinity;
  const draw = () => {
    requestAnimationFrame(() => {
      pending = false;
      last = now();
      render();
    });
  };
  return () => {
    if (pending) return;
    pending = true;
    const wait = last + minIntervalMs - now();
    if (wait <= 0) draw();
    else setTimeout(draw, wait);
  };
}
