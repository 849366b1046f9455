// Reads HTTP/1.1 answers framed by Content-Length off a raw (TLS) socket, for tests that pipeline
// requests by hand: the answers in order, and how many reads they took.
import type { TLSSocket } from "node:tls";

export interface FramedAnswer { status: number; length: number; body: Buffer }

/**
 * Resolves once `count` answers arrived. `isHead(i)`: answer i is to a HEAD request (its
 * Content-Length names no body).
 */
export function readFramedAnswers(socket: TLSSocket, count: number, isHead: (i: number) => boolean = () => false): Promise<{ answers: FramedAnswer[]; reads: number }> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    let reads = 0;
    const answers: FramedAnswer[] = [];
    const onData = (chunk: Buffer) => {
      reads++;
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const headerEnd = buffer.indexOf("\r\n\r\n");
        if (headerEnd === -1) break;
        const head = buffer.subarray(0, headerEnd).toString("latin1");
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        const bodyLength = isHead(answers.length) ? 0 : length;
        if (buffer.length < headerEnd + 4 + bodyLength) break;
        answers.push({ status: Number(head.split(" ")[1]), length, body: Buffer.from(buffer.subarray(headerEnd + 4, headerEnd + 4 + bodyLength)) });
        buffer = buffer.subarray(headerEnd + 4 + bodyLength);
      }
      if (answers.length >= count) {
        socket.off("data", onData);
        resolve({ answers, reads });
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}
