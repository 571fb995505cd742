/** anySignal: the caller's signal and the service's own, as one, on every Node 20 (AbortSignal.any came in 20.3). */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { anySignal } from '../src/any-signal.js';

const builtIn = AbortSignal.any;

describe.each([
  ['with AbortSignal.any', () => {}],
  ['on a Node without AbortSignal.any', () => Reflect.deleteProperty(AbortSignal, 'any')],
])('anySignal %s', (_where, prepare) => {
  afterEach(() => {
    AbortSignal.any = builtIn;
  });

  it('aborts when any one of them does, with that one’s reason', () => {
    prepare();
    const caller = new AbortController();
    const shutdown = new AbortController();
    const either = anySignal([caller.signal, shutdown.signal]);
    expect(either.aborted).toBe(false);
    shutdown.abort('shutting down');
    expect(either.aborted).toBe(true);
    expect(either.reason).toBe('shutting down');
    caller.abort('gone');
    expect(either.reason).toBe('shutting down');
  });

  it('aborts when a timeout among them runs out, however often the garbage collector runs meanwhile', async () => {
    prepare();
    // Node 20's AbortSignal.any holds its signals weakly: a timeout signal nothing else held was
    // collected and never fired (nodejs/node#57736).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const either = anySignal([new AbortController().signal, AbortSignal.timeout(200)]);
    const collecting = setInterval(gc, 20);
    const aborted = await Promise.race([
      new Promise((resolve) => either.addEventListener('abort', () => resolve('aborted'), { once: true })),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 3 s'), 3_000)),
    ]);
    clearInterval(collecting);
    expect(aborted).toBe('aborted');
    expect((either.reason as Error).name).toBe('TimeoutError');
  });

  it('is aborted from the start when one already is', () => {
    prepare();
    const done = AbortSignal.abort('already');
    const either = anySignal([new AbortController().signal, done]);
    expect(either.aborted).toBe(true);
    expect(either.reason).toBe('already');
  });
});
