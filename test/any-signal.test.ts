/** anySignal: the caller's signal and the service's own, as one, on every Node 20 (AbortSignal.any came in 20.3). */
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

  it('is aborted from the start when one already is', () => {
    prepare();
    const done = AbortSignal.abort('already');
    const either = anySignal([new AbortController().signal, done]);
    expect(either.aborted).toBe(true);
    expect(either.reason).toBe('already');
  });
});
