/** Where a combined signal keeps the signals it was made of. */
const SOURCES = Symbol('svcmesh.anySignal.sources');

/**
 * An AbortSignal that aborts when any of `signals` does, with its reason. `AbortSignal.any` came
 * in Node 20.3; `engines` promises every Node 20, so earlier ones get the same from listeners.
 */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === 'function') {
    const combined = AbortSignal.any(signals);
    // Node 20's AbortSignal.any holds its signals weakly: an AbortSignal.timeout that nothing else
    // held was collected and never fired (nodejs/node#57736). The combined signal holds them, for
    // as long as whatever waits on it does.
    Object.defineProperty(combined, SOURCES, { value: signals });
    return combined;
  }
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      return controller.signal;
    }
  }
  const onAbort = (event: Event) => {
    for (const signal of signals) signal.removeEventListener('abort', onAbort);
    controller.abort((event.target as AbortSignal).reason);
  };
  for (const signal of signals) signal.addEventListener('abort', onAbort, { once: true });
  return controller.signal;
}
