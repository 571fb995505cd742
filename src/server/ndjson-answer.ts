const encoder = new TextEncoder();
const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);

export interface NdjsonAnswerOptions {
  /** The message of the `{"error"}` line that ends an answer failing part-way. */
  describe(error: unknown): string;
  /** Called once the answer is over, however it ended. */
  onEnd(): void;
  /** The reader went away: stop producing the rest. */
  onCancel(): void;
}

/**
 * A streamed answer as `/receive` sends it: one `{"message"}` line per piece, then
 * `{"done": true}`, or an `{"error"}` line when producing the rest fails. `first` was read
 * before the answer began, so that a failure before any piece could still be an error status
 * (which the registrar can fail over on); it goes out as soon as the answer is read.
 */
export function ndjsonAnswer(first: IteratorResult<string>, rest: AsyncIterator<string>, options: NdjsonAnswerOptions): ReadableStream<Uint8Array> {
  let next: Promise<IteratorResult<string>> | undefined = Promise.resolve(first);
  let over = false;
  const end = (controller: ReadableStreamDefaultController<Uint8Array>, last: unknown) => {
    if (over) return;
    over = true;
    controller.enqueue(line(last));
    controller.close();
    options.onEnd();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const piece = await (next ?? rest.next());
        next = undefined;
        if (over) return;
        if (piece.done) end(controller, { done: true });
        else controller.enqueue(line({ message: piece.value }));
      } catch (error) {
        end(controller, { error: options.describe(error) });
      }
    },
    cancel() {
      over = true;
      options.onCancel();
      options.onEnd();
    },
  });
}
