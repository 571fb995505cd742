/** How the terminal tables read times: what a person sees in `svcmesh services`. */
import { describe, expect, it } from 'vitest';
import { colourEnabled, relative } from '../src/output.js';

const NOW = Date.parse('2026-11-29T12:00:00.000Z');
const at = (offsetMs: number) => new Date(NOW + offsetMs).toISOString();

describe('relative times', () => {
  it('reads a heartbeat received this second as "just now", never "in 0s"', () => {
    expect(relative(at(-300), NOW, { past: true })).toBe('just now');
    expect(relative(at(0), NOW, { past: true })).toBe('just now');
  });

  it('reads a past-only time from a registrar whose clock runs ahead as "just now"', () => {
    expect(relative(at(2_000), NOW, { past: true })).toBe('just now');
  });

  it('reads older heartbeats as seconds, minutes and hours ago', () => {
    expect(relative(at(-12_000), NOW, { past: true })).toBe('12s ago');
    expect(relative(at(-252_000), NOW, { past: true })).toBe('4m 12s ago');
    expect(relative(at(-2 * 3_600_000 - 300_000), NOW, { past: true })).toBe('2h 5m ago');
  });

  it('reads an expiry ahead as "in …", one due this second as "now", one passed as "… ago"', () => {
    expect(relative(at(252_000), NOW)).toBe('in 4m 12s');
    expect(relative(at(200), NOW)).toBe('now');
    expect(relative(at(-3_000), NOW)).toBe('3s ago');
  });
});

describe('colour', () => {
  it('is on at a terminal, off in a pipe, with NO_COLOR set to something, or on a dumb terminal', () => {
    expect(colourEnabled(true, {})).toBe(true);
    expect(colourEnabled(false, {})).toBe(false);
    expect(colourEnabled(undefined, {})).toBe(false);
    expect(colourEnabled(true, { NO_COLOR: '1' })).toBe(false);
    expect(colourEnabled(true, { TERM: 'dumb' })).toBe(false);
  });

  it('stays on with NO_COLOR set but empty, as no-color.org asks', () => {
    expect(colourEnabled(true, { NO_COLOR: '' })).toBe(true);
  });
});
