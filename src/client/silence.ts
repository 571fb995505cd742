import { HttpError } from './http.js';

/**
 * `ask --timeout`: gives up once the registrar has sent nothing for that long. An answer may
 * take minutes, so there is no limit unless one is asked for; with one, a registrar that hangs
 * (stopped, deadlocked, behind a proxy that holds the connection) ends the command instead of
 * leaving a script waiting for ever. Each piece of a streamed answer starts the wait again.
 */
export interface SilenceLimit {
  /** Aborted when the limit is reached. */
  readonly signal: AbortSignal;
  /** Whether the limit, rather than anything else, ended the request. */
  readonly fired: boolean;
  /** Something came: the wait starts again. */
  heard(): void;
  stop(): void;
  /** What to tell the user once it fired. */
  error(url: string): HttpError;
}

export function silenceLimit(seconds: number | undefined): SilenceLimit | undefined {
  if (seconds === undefined) return undefined;
  const controller = new AbortController();
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    controller.abort(new DOMException(`nothing for ${seconds} s`, 'TimeoutError'));
  }, seconds * 1000);
  return {
    signal: controller.signal,
    get fired() {
      return fired;
    },
    heard: () => timer.refresh(),
    stop: () => clearTimeout(timer),
    error: (url) =>
      Object.assign(
        new HttpError(`${url} sent nothing for ${seconds} s (--timeout ${seconds}): the registrar or the service may be stuck, or the answer slow to come`, { url }),
        // In place of the usual "Is the registrar running there?": it may well be.
        { hint: 'Raise --timeout, or leave it out to wait as long as the answer takes.' },
      ),
  };
}
