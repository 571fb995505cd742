/** Text from servers as a terminal shows it: escapes written out, never obeyed; long bodies cut. */
import { describe, expect, it } from 'vitest';
import { answerPrinter, excerpt, printable, printableAnswer, printableLines } from '../src/terminal-text.js';

describe('printable', () => {
  it('writes out C0 (ESC, BEL, line breaks), DEL and C1 as JSON escapes, and leaves other text alone', () => {
    expect(printable('\u001b[2J\u0007a\nb\tc\r\u007f\u009b31m\u0085')).toBe('\\u001b[2J\\u0007a\\nb\\tc\\r\\u007f\\u009b31m\\u0085');
    expect(printable('café – 東京 ✓')).toBe('café – 東京 ✓');
    // Bidi overrides and isolates, which make text read in another order than it is.
    expect(printable('invoice_\u202egnp.exe \u2066x\u2069')).toBe('invoice_\\u202egnp.exe \\u2066x\\u2069');
    expect(printableAnswer('\u202eabc')).toBe('\\u202eabc');
    // Marks that only hint a direction (U+200E, U+200F) are ordinary text.
    expect(printable('a\u200fb')).toBe('a\u200fb');
  });

  it('printableLines keeps line breaks, for messages whose hints are lines of their own', () => {
    expect(printableLines('error \u001b[31m\n  hint')).toBe('error \\u001b[31m\n  hint');
  });
});

describe('printableAnswer', () => {
  it('keeps an answer laid out (line breaks, CRLF as one, tabs) and writes out every other control character', () => {
    expect(printableAnswer('Title\r\n\tindented\nnext')).toBe('Title\n\tindented\nnext');
    expect(printableAnswer('\u001b[2J\u001b]0;owned\u0007 lone\rreturn \u009b31m')).toBe('\\u001b[2J\\u001b]0;owned\\u0007 lone\\rreturn \\u009b31m');
  });
});

describe('answerPrinter', () => {
  it('takes a CRLF split between two pieces of a streamed answer as one line break, and writes out a CR left at the end', () => {
    const printer = answerPrinter();
    expect(printer.piece('line1\r')).toBe('line1');
    expect(printer.piece('\nline2\r')).toBe('\nline2');
    expect(printer.piece('x')).toBe('\\rx');
    expect(printer.piece('end\r')).toBe('end');
    expect(printer.end()).toBe('\\r');
  });
});

describe('excerpt', () => {
  it('makes white space one space and cuts a long body with "…"', () => {
    expect(excerpt('<html>\n  <body>\n')).toBe('<html> <body>');
    expect(excerpt('x'.repeat(1_000), 300)).toBe(`${'x'.repeat(299)}…`);
  });
});
