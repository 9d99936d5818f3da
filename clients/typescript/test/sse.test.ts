import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SSEParser, type SSEFrame } from "../src/sse.js";

interface Run {
  frames: SSEFrame[];
  ids: string[];
  retries: number[];
  comments: string[];
  parser: SSEParser;
}

function parse(chunks: string[], initialId = ""): Run {
  const run: Run = { frames: [], ids: [], retries: [], comments: [], parser: undefined as unknown as SSEParser };
  run.parser = new SSEParser(
    {
      onFrame: (f) => run.frames.push(f),
      onId: (id) => run.ids.push(id),
      onRetry: (ms) => run.retries.push(ms),
      onComment: (c) => run.comments.push(c),
    },
    initialId,
  );
  for (const c of chunks) run.parser.feed(c);
  return run;
}

/** Every way of cutting text into two pieces, and one byte at a time. */
function splits(text: string): string[][] {
  const out: string[][] = [[text], [...text]];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  return out;
}

const stream = [
  "retry: 2000\n",
  ": connected\n\n",
  "id: 7\nevent: m.room.message\ndata: {\"a\":1}\n\n",
  "event: m.typing\ndata: {\"t\":true}\n\n",
  "id: 8\r\nevent: m.reaction\r\ndata: line one\r\ndata: line two\r\n\r\n",
  ": ping\r\r",
  "id: 9\rdata: x\r\r",
].join("");

describe("SSEParser", () => {
  test("gives the same frames however the stream is cut", () => {
    const want = parse([stream]);
    assert.deepEqual(
      want.frames.map((f) => [f.event, f.data, f.lastEventId, f.hasId]),
      [
        ["m.room.message", '{"a":1}', "7", true],
        ["m.typing", '{"t":true}', "7", false],
        ["m.reaction", "line one\nline two", "8", true],
        ["message", "x", "9", true],
      ],
    );
    assert.deepEqual(want.ids, ["7", "8", "9"]);
    assert.deepEqual(want.retries, [2000]);
    assert.deepEqual(want.comments, ["connected", "ping"]);
    for (const chunks of splits(stream)) {
      const got = parse(chunks);
      assert.deepEqual(got.frames, want.frames, `cut as ${JSON.stringify(chunks.slice(0, 2))}`);
      assert.deepEqual(got.ids, want.ids);
      assert.deepEqual(got.comments, want.comments);
    }
  });

  test("a CRLF split between chunks ends one line, not two", () => {
    const got = parse(["data: a\r", "\ndata: b\r", "\n\r", "\n"]);
    assert.deepEqual(got.frames.map((f) => f.data), ["a\nb"]);
  });

  test("an id without data sets the position but dispatches nothing", () => {
    const got = parse(["id: 42\n\n", ": connected\n\n", "event: m.typing\ndata: {}\n\n"]);
    assert.deepEqual(got.ids, ["42"]);
    assert.equal(got.parser.lastEventId, "42");
    assert.equal(got.frames.length, 1);
    assert.equal(got.frames[0]!.lastEventId, "42");
    assert.equal(got.frames[0]!.hasId, false);
  });

  test("id handling: kept across frames, emptied by an empty id, NUL ignored, resumes from the initial id", () => {
    const got = parse(["data: a\n\n", "id: 3\ndata: b\n\n", "data: c\n\n", "id: 4\u00005\ndata: d\n\n", "id\ndata: e\n\n"], "2");
    assert.deepEqual(
      got.frames.map((f) => [f.data, f.lastEventId]),
      [
        ["a", "2"],
        ["b", "3"],
        ["c", "3"],
        ["d", "3"],
        ["e", ""],
      ],
    );
    assert.deepEqual(got.ids, ["3", ""]);
  });

  test("data lines: joined with LF, an empty data line counts, space after the colon is optional", () => {
    const got = parse(["data:one\ndata\ndata:  two\n\n", "data:\n\n", "event: x\n\n"]);
    assert.deepEqual(got.frames.map((f) => f.data), ["one\n\n two", ""]);
  });

  test("comments, unknown fields and bad retry values are skipped", () => {
    const got = parse([":just a comment\nfoo: bar\nretry: 12a\nretry: 5\ndata: ok\n\n"]);
    assert.deepEqual(got.comments, ["just a comment"]);
    assert.deepEqual(got.retries, [5]);
    assert.deepEqual(got.frames.map((f) => f.data), ["ok"]);
  });

  test("a leading BOM is dropped; an unterminated last frame is not dispatched", () => {
    const got = parse(["\ufeffdata: a\n\ndata: b\n"]);
    got.parser.end();
    assert.deepEqual(got.frames.map((f) => f.data), ["a"]);
  });

  test("the event name resets after each frame", () => {
    const got = parse(["event: reset\ndata: {}\n\ndata: {}\n\n"]);
    assert.deepEqual(got.frames.map((f) => f.event), ["reset", "message"]);
  });
});
