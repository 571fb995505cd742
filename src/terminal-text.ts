/**
 * Text that came from elsewhere (a registrar, a service's metadata, an error page), made fit to
 * print at a terminal. Leaf module: the client and the output both use it.
 */

// C0 (ESC among them), DEL and C1 (U+009B is a one-character CSI): a terminal obeys these. And
// the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make text
// read in another order than it is (the "Trojan Source" trick) where a terminal reorders.
// biome-ignore lint: matching control characters is the point of this pattern
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// biome-ignore lint: as above, without the line break
const CONTROL_BUT_LINE_BREAK = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// biome-ignore lint: as above, without the line break and the tab
const CONTROL_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

const escape = (char: string) => NAMED[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * `text` with every control character written out as JSON writes it (`\n`, `\u001b`), so a
 * registrar or a service cannot recolour, retitle or clear the terminal of whoever reads it, nor
 * forge a line of output (CVE-2021-25743 was kubectl's case of this).
 */
export function printable(text: string): string {
  return text.replace(CONTROL, escape);
}

/** As `printable`, but line breaks stay: for this program's own messages, whose hints are lines. */
export function printableLines(text: string): string {
  return text.replace(CONTROL_BUT_LINE_BREAK, escape);
}

/**
 * A service's answer, for a person at a terminal: line breaks and tabs lay it out as the service
 * meant (a CRLF is a line break), every other control character is written out. A model's answer
 * is text from elsewhere too: asked to, it will happily write the escape that clears the screen.
 * Piped, the answer goes out exactly as it came.
 */
export function printableAnswer(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(CONTROL_BUT_LAYOUT, escape);
}

/**
 * printableAnswer for an answer that comes in pieces: a CRLF split between two pieces is still one
 * line break, so a piece's last CR waits for the next piece's first character.
 */
export function answerPrinter(): { piece(text: string): string; end(): string } {
  let heldCR = false;
  return {
    piece(text) {
      let whole = heldCR ? `\r${text}` : text;
      heldCR = whole.endsWith('\r');
      if (heldCR) whole = whole.slice(0, -1);
      return printableAnswer(whole);
    },
    end() {
      const rest = heldCR ? printableAnswer('\r') : '';
      heldCR = false;
      return rest;
    },
  };
}

/** A body quoted in a one-line message: white space runs made one space, cut at `max` with "…". */
export function excerpt(text: string, max = 300): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
