/**
 * GroupCommit: one save at a time, shared by every change that arrives while one runs, and a
 * failed save retried on its own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/registry/group-commit.js';
import { waitFor } from './support/fake-ollama.js';

interface Disk {
  /** What each save wrote: the version of the data current when it began. */
  saves: number[];
  failWith: Error | undefined;
  running: number;
  mostAtOnce: number;
}

let version = 0;
let disk: Disk;
const commits: GroupCommit[] = [];

function groupCommit(options: { behindMs?: number; retryMs?: number } = {}) {
  disk = { saves: [], failWith: undefined, running: 0, mostAtOnce: 0 };
  const commit = new GroupCommit(
    async () => {
      const snapshot = version;
      disk.running += 1;
      disk.mostAtOnce = Math.max(disk.mostAtOnce, disk.running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      disk.running -= 1;
      if (disk.failWith) throw disk.failWith;
      disk.saves.push(snapshot);
    },
    { behindMs: options.behindMs ?? 10, retryMs: options.retryMs ?? 10 },
  );
  commits.push(commit);
  return commit;
}

afterEach(async () => {
  for (const commit of commits.splice(0)) await commit.close().catch(() => {});
});

describe('GroupCommit', () => {
  it('returns from now() only once a save holding the change is done, one save at a time, sharing saves', async () => {
    const commit = groupCommit();
    const changes = Array.from({ length: 100 }, async () => {
      version += 1;
      const mine = version;
      await commit.now();
      expect(disk.saves.some((saved) => saved >= mine)).toBe(true);
    });
    await Promise.all(changes);
    expect(disk.mostAtOnce).toBe(1);
    // One for the first change, one for all that came while it ran.
    expect(disk.saves.length).toBeLessThanOrEqual(2);
  });

  it('saves a change written behind on its own, once for a burst', async () => {
    const commit = groupCommit();
    for (let i = 0; i < 50; i++) {
      version += 1;
      commit.soon();
    }
    await waitFor(() => disk.saves.length === 1, 2_000, 'the save behind');
    expect(disk.saves).toEqual([version]);
  });

  it('fails the waiters of a failed save, reports it, and retries on its own until it works', async () => {
    const commit = groupCommit();
    disk.failWith = new Error('ENOTDIR: not a directory');
    version += 1;
    await expect(commit.now()).rejects.toThrow('ENOTDIR');
    expect(commit.failure?.message).toContain('ENOTDIR');

    disk.failWith = undefined;
    await waitFor(() => disk.saves.length === 1, 2_000, 'the retry');
    expect(disk.saves).toEqual([version]);
    await waitFor(() => commit.failure === undefined, 2_000, 'the failure to clear');
  });

  it('makes one last save on close, after the one running', async () => {
    const commit = groupCommit({ behindMs: 60_000 });
    version += 1;
    commit.soon();
    await commit.close();
    expect(disk.saves).toEqual([version]);
  });
});
