// An API origin (or anything answering for it) that redirects must not get the client to send the token, the
// Idempotency-Key or the create's body elsewhere: two real local HTTP servers, the first answering 307 to the
// second, which must receive nothing.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { ApiError, createClient } from "../src/index.js";

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

const close = (server: Server): Promise<void> => new Promise((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
});

const redirected: { method: string; url: string }[] = [];
const answered: { method: string; url: string; token: string | undefined }[] = [];
const third = createServer((request: IncomingMessage, response) => {
  redirected.push({ method: request.method ?? "", url: request.url ?? "" });
  response.writeHead(200, { "Content-Type": "application/json" }).end("{}");
});
let thirdOrigin = "";
const api = createServer((request, response) => {
  answered.push({ method: request.method ?? "", url: request.url ?? "",
    token: request.headers["x-session-token"] as string | undefined });
  request.resume();
  response.writeHead(307, { Location: `${thirdOrigin}${request.url ?? "/"}` }).end();
});
let apiOrigin = "";

beforeAll(async () => {
  thirdOrigin = await listen(third);
  apiOrigin = await listen(api);
});
afterAll(async () => {
  await close(api);
  await close(third);
});

describe("a redirecting API", () => {
  test("create, confirm, status, cancel and limits fail with NETWORK_ERROR and the redirect's target gets nothing",
    async () => {
      const client = createClient({ baseUrl: apiOrigin, timing: { requestTimeoutMs: 5000 } });
      const token = { token: "11111111-2222-4333-8444-555555555555" };
      const calls: Promise<unknown>[] = [
        client.createUpload({ email: "maya@example.com", fileType: "image/jpeg", fileSize: 10 },
          { idempotencyKey: "key-redirect" }),
        client.confirmUpload("abcdefghijklmnopqrstuvwx", token),
        client.getJob("abcdefghijklmnopqrstuvwx", token),
        client.cancelUpload("abcdefghijklmnopqrstuvwx", token),
        client.limits(),
      ];
      const outcomes = await Promise.allSettled(calls);
      expect(outcomes.map((outcome) => outcome.status === "rejected" && outcome.reason instanceof ApiError
        ? outcome.reason.code : outcome.status)).toEqual(Array(5).fill("NETWORK_ERROR"));
      // The API's origin was asked (the token went where it was meant to) and answered with its redirect ...
      expect(answered.map(({ method }) => method).sort()).toEqual(["DELETE", "GET", "GET", "POST", "POST"]);
      expect(answered.filter(({ token: sent }) => sent).length).toBe(3);
      // ... and nothing followed it.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(redirected).toEqual([]);
    });
});
