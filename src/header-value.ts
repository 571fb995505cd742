/** Printable ASCII: what every HTTP client sends byte for byte the same way. */
const ASCII_TOKEN = /^[\x20-\x7e]*$/;

/**
 * Whether a token can go out in an Authorization header, and arrive as it was. One with a line
 * break (a secret file read with its trailing newline, say) would fail every request it is sent
 * with; one with a letter outside ASCII (ä, ✓) is sent as UTF-8 by curl and Go (a Prometheus
 * scrape) but as Latin-1 by browsers and node, so the right token would be refused for some.
 * (A message saying so lists "a space at its start or end" too.)
 */
export function fitsInHeader(value: string): boolean {
  // A space at either end is taken off by every HTTP parser: such a token could never match.
  return ASCII_TOKEN.test(value) && value === value.trim();
}
