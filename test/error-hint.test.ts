/** The advice printed under an error, by `svcmesh <command>` and by the `ask` prompt alike. */
import { describe, expect, it } from 'vitest';
import { HttpError } from '../src/client/http.js';
import { hintFor } from '../src/error-hint.js';

describe('the line under an error', () => {
  it('points at a registrar that is not there, and at the token one wants', () => {
    expect(hintFor(new HttpError('Cannot reach http://127.0.0.1:5001/forward: ECONNREFUSED', { url: 'http://127.0.0.1:5001/forward' }))).toMatch(
      /^\n {2}Is the registrar running there\? Start it with `svcmesh registrar`/,
    );
    expect(hintFor(new HttpError('http://127.0.0.1:5001/forward answered 401: …', { status: 401, url: 'http://127.0.0.1:5001/forward' }))).toMatch(
      /^\n {2}Pass the registrar's token with --token, SVCMESH_TOKEN/,
    );
  });

  it("prefers the hint a command put on the error, and adds nothing to other errors", () => {
    const unknown = new HttpError('… answered 404: Service olama is not registered', { status: 404, url: 'http://127.0.0.1:5001/forward' });
    expect(hintFor(unknown)).toBe('');
    unknown.hint = 'Did you mean ollama_service?';
    expect(hintFor(unknown)).toBe('\n  Did you mean ollama_service?');
    expect(hintFor(new Error('something else'))).toBe('');
  });
});
