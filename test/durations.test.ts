/** Flags that take a wait: seconds, or a duration written as consul and etcd users write one. */
import { describe, expect, it } from 'vitest';
import { parseSeconds, parseTtl } from '../src/commands/shared.js';

describe('a wait given to a flag', () => {
  it('is a number of seconds, or a duration in ms, s, m and h as consul and etcd take', () => {
    expect(parseSeconds('30')).toBe(30);
    expect(parseSeconds('0.5')).toBe(0.5);
    expect(parseSeconds('.5')).toBe(0.5);
    expect(parseSeconds(' 10 ')).toBe(10);
    expect(parseSeconds('30s')).toBe(30);
    expect(parseSeconds('500ms')).toBe(0.5);
    expect(parseSeconds('2m')).toBe(120);
    expect(parseSeconds('1h30m')).toBe(5_400);
    expect(parseTtl('5m')).toBe(300);
  });

  it.each(['soon', '30x', 's', '1h 30m', '-5s', '0s', '24d', '600h', '0x10', '1e3', '0b11', 'Infinity', ''])('refuses %j, saying what it takes', (value) => {
    expect(() => parseSeconds(value)).toThrow(/Expected a number of seconds, or a duration such as 30s, 500ms or 1h30m/);
  });
});
