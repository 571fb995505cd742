/**
 * `/catalog` and the events' snapshot are written as text, not built as objects and stringified:
 * the text must be exactly what JSON.stringify of the objects gives, for every time a Date can
 * hold and every instance a client can register.
 */
import { describe, expect, it } from 'vitest';
import type { Instance } from '../src/registry/types.js';
import { instanceJson, instanceText, isoTime, servicesText } from '../src/server/wire.js';

const DAY_MS = 86_400_000;

describe('isoTime', () => {
  it('writes what toISOString writes, at the edges of days, months, leap years and centuries', () => {
    const edges = [
      0,
      1,
      999,
      1000,
      59_999,
      DAY_MS - 1,
      DAY_MS,
      Date.UTC(2000, 1, 29, 23, 59, 59, 999),
      Date.UTC(2000, 2, 1),
      Date.UTC(2024, 11, 31, 23, 59, 59, 999),
      Date.UTC(2100, 0, 1, 0, 0, 0, 7),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10_000, 0, 1),
      -1,
      -DAY_MS - 1,
      Date.UTC(1969, 11, 31, 23, 59, 59, 990),
      8.64e15,
      -8.64e15,
      1_765_000_000_123.5,
    ];
    for (const time of edges) expect(isoTime(time), String(time)).toBe(new Date(time).toISOString());
  });

  it('writes what toISOString writes for many times, in any order (the day it keeps from the last call changes)', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let n = 0; n < 20_000; n += 1) {
      const time = Math.floor(random() * 4e12) - 1e11;
      expect(isoTime(time)).toBe(new Date(time).toISOString());
    }
  });

  it('fails as toISOString fails for a time no Date holds', () => {
    for (const time of [Number.NaN, 8.64e15 + 1, Number.POSITIVE_INFINITY]) expect(() => isoTime(time)).toThrow(RangeError);
  });
});

function instance(overrides: Partial<Instance> = {}): Instance {
  return {
    name: 'web',
    url: 'http://127.0.0.1:8080',
    registeredAt: Date.UTC(2026, 11, 6, 7, 0, 0, 5),
    lastHeartbeat: Date.UTC(2026, 11, 6, 7, 1, 2, 30),
    expiresAt: Date.UTC(2026, 11, 6, 7, 6, 2, 30),
    metadata: {},
    ...overrides,
  };
}

describe('instanceText and servicesText', () => {
  it('are JSON.stringify of the wire objects, with metadata of every kind and the down mark', () => {
    const down = new Set<Instance>();
    const reachability = { isDown: (i: Instance) => down.has(i) };
    const odd = instance({
      url: 'http://[::1]:8080/a/"quoted"/ü?x=1&y=\\',
      metadata: { version: '1.2', tags: ['a', 'ä', '\u2028'], nested: { n: 1.5, ok: true, none: null }, quote: '"\n\t' },
    });
    const downInstance = instance({ url: 'http://127.0.0.1:8081' });
    down.add(downInstance);
    for (const each of [instance(), odd, downInstance]) {
      expect(instanceText(each, reachability)).toBe(JSON.stringify(instanceJson(each, reachability)));
      expect(instanceText(each)).toBe(JSON.stringify(instanceJson(each)));
    }
    expect(JSON.parse(instanceText(downInstance, reachability)).down).toBe(true);

    const all = new Map<string, Instance[]>([
      ['web', [instance(), downInstance]],
      ['ollama_service', [odd]],
      ['zero', []],
    ]);
    const objects = Object.fromEntries([...all].map(([name, list]) => [name, list.map((each) => instanceJson(each, reachability))]));
    expect(servicesText(all, reachability)).toBe(JSON.stringify(objects));
    expect(servicesText(new Map())).toBe('{}');

    // Names that are array indexes come first, ascending, in an object's keys: the text must too.
    const numbered = new Map<string, Instance[]>([['web', [instance()]], ['10', [instance()]], ['9', [instance()]], ['007', [instance()]], ['4294967295', [instance()]]]);
    const numberedObjects = Object.fromEntries([...numbered].map(([name, list]) => [name, list.map((each) => instanceJson(each))]));
    expect(Object.keys(numberedObjects)).toEqual(['9', '10', 'web', '007', '4294967295']);
    expect(servicesText(numbered)).toBe(JSON.stringify(numberedObjects));
  });
});
