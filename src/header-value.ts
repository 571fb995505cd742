/** What node:http lets through in a header value: tab, printable ASCII and bytes 0x80-0xff. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Whether a token can go out in an Authorization header. One with a line break (a secret file
 * read with its trailing newline, say) would fail every request it is sent with.
 */
export function fitsInHeader(value: string): boolean {
  return HEADER_VALUE.test(value);
}
