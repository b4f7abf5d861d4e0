// @vitest-environment happy-dom
// The story's <UploadForm enableUpload onUploadComplete={...} /> with React Testing Library, under StrictMode.
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { renderToString } from "react-dom/server";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { ApiError, PENDING_UPLOAD_KEY } from "../src/index.js";
import { UploadForm } from "../src/react/index.js";
import { MemoryStorage, installStorages, jpeg, removeStorages, scriptedClient } from "./helpers.js";

/** A PUT that finishes at once, or never while `hold` is true. */
class FakeXhr {
  static hold = false;
  status = 0;
  upload: { onprogress?: (event: ProgressEvent) => void; onload?: () => void } = {};
  onload?: () => void;
  onloadend?: () => void;
  onabort?: () => void;
  open(): void {}
  setRequestHeader(): void {}
  abort(): void {
    this.onabort?.();
    this.onloadend?.();
  }
  send(): void {
    if (FakeXhr.hold) return;
    setTimeout(() => {
      this.upload.onload?.();
      this.status = 200;
      this.onload?.();
      this.onloadend?.();
    }, 1);
  }
}

const STRICT = { reactStrictMode: true } as const;
let session: MemoryStorage;
beforeEach(() => {
  session = new MemoryStorage();
  installStorages({ session });
  FakeXhr.hold = false;
  globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
});
afterEach(() => {
  cleanup();
  removeStorages();
});

function fill(email = "maya@example.com", file: File | null = jpeg()) {
  fireEvent.change(screen.getByLabelText("Email"), { target: { value: email } });
  if (file) fireEvent.change(screen.getByLabelText("Photo"), { target: { files: [file] } });
}

describe("UploadForm", () => {
  test("the story's line: fill in, Upload, onUploadComplete once with the job", async () => {
    const { client, calls } = scriptedClient();
    const handleUploadComplete = vi.fn();
    render(<UploadForm enableUpload onUploadComplete={handleUploadComplete} client={client} />, STRICT);
    fill();
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));

    await waitFor(() => expect(screen.getByRole("status").textContent).toBe("Upload complete."));
    expect(handleUploadComplete).toHaveBeenCalledTimes(1);
    expect(handleUploadComplete).toHaveBeenCalledWith(expect.objectContaining({ uploadId: "job1", sessionToken: "token1" }));
    expect(calls.create).toHaveLength(1);
    expect(screen.getByRole("progressbar", { name: "Upload progress" })).toHaveProperty("value", 100);
  });

  test("an invalid email is told next to the field, which gets the focus; nothing is sent", async () => {
    const { client, calls } = scriptedClient();
    render(<UploadForm client={client} />, STRICT);
    fill("not an email");
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    const email = screen.getByLabelText("Email");
    await waitFor(() => expect(document.activeElement).toBe(email));
    expect(email.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByText("Please enter a valid email address, like name@example.com.").id)
      .toBe(email.getAttribute("aria-describedby")?.split(" ")[1]);
    expect(calls.create).toEqual([]);
  });

  test("no photo: the photo field says so", async () => {
    const { client } = scriptedClient();
    render(<UploadForm client={client} />, STRICT);
    fill("maya@example.com", null);
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    await waitFor(() => expect(document.activeElement).toBe(screen.getByLabelText("Photo")));
    expect(screen.getByText("Choose a photo to upload.")).toBeTruthy();
  });

  test("a failure shows its message and Try again (focused), which resumes the same job", async () => {
    const down = Array.from({ length: 6 }, () => new ApiError(503, "SERVICE_UNAVAILABLE", "The service is down."));
    const { client, calls } = scriptedClient({ create: down });
    const done = vi.fn();
    render(<UploadForm client={client} onUploadComplete={done} />, STRICT);
    fill();
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));

    await waitFor(() => expect(screen.getByRole("alert").textContent).toBe("The service is down."));
    const retry = screen.getByRole("button", { name: "Try again" });
    await waitFor(() => expect(document.activeElement).toBe(retry));
    expect(screen.queryByRole("button", { name: "Upload" })).toBeNull();
    expect(screen.getByRole("button", { name: "Start over" })).toBeTruthy();

    fireEvent.click(retry);
    await waitFor(() => expect(done).toHaveBeenCalledTimes(1));
    expect(new Set(calls.create.map(({ key }) => key)).size).toBe(1);
  });

  test("changing the email after a failure makes it a new upload (Upload again, not Try again)", async () => {
    const { client } = scriptedClient({ create: Array.from({ length: 6 }, () => new ApiError(0, "NETWORK_ERROR", "offline")) });
    render(<UploadForm client={client} />, STRICT);
    fill();
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    await screen.findByRole("button", { name: "Try again" });
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "other@example.com" } });
    expect(screen.queryByRole("button", { name: "Try again" })).toBeNull();
    expect(screen.getByRole("button", { name: "Upload" })).toBeTruthy();
  });

  test("Cancel during the PUT withdraws the job, says so and gives the focus back to Upload", async () => {
    FakeXhr.hold = true;
    const { client, calls } = scriptedClient();
    render(<UploadForm client={client} />, STRICT);
    fill();
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    const cancel = await screen.findByRole("button", { name: "Cancel" });
    expect(screen.getByLabelText("Email")).toHaveProperty("disabled", true);
    expect(screen.getByRole("button", { name: "Upload" })).toHaveProperty("disabled", true);
    fireEvent.click(cancel);
    await waitFor(() => expect(screen.getByRole("status").textContent).toBe("Upload cancelled."));
    await waitFor(() => expect(document.activeElement).toBe(screen.getByRole("button", { name: "Upload" })));
    expect(calls.cancel).toEqual([{ id: "job1", token: "token1" }]);
  });

  test("Start over after a refusal clears the form back to idle", async () => {
    const { client } = scriptedClient({ create: [new ApiError(429, "RATE_LIMITED", "slow down", { retryAfter: 120 })] });
    render(<UploadForm client={client} />, STRICT);
    fill();
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent)
      .toBe("Too many uploads right now. Please try again in 2 minutes."));
    // Not before the server's Retry-After: the focus is on the message.
    expect(screen.queryByRole("button", { name: "Try again" })).toBeNull();
    await waitFor(() => expect(document.activeElement).toBe(screen.getByRole("alert")));
    fireEvent.click(screen.getByRole("button", { name: "Start over" }));
    expect(screen.getByRole("alert").textContent).toBe("");
    expect(screen.queryByRole("button", { name: "Start over" })).toBeNull();
    await waitFor(() => expect(document.activeElement).toBe(screen.getByLabelText("Email")));
  });

  test("enableUpload={false}: the form is shown disabled and says why", () => {
    const { client } = scriptedClient();
    render(<UploadForm enableUpload={false} client={client} />, STRICT);
    expect(screen.getByText("Uploads are turned off right now.")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Upload" })).toHaveProperty("disabled", true);
    expect(screen.getByLabelText("Email")).toHaveProperty("disabled", true);
  });

  test("labels, class names and a render prop", async () => {
    const { client } = scriptedClient();
    render(<UploadForm client={client} className="card" classNames={{ input: "in", submit: "primary" }}
      labels={{ email: "E-Mail", submit: "Hochladen" }}>
      {({ state }) => <output data-testid="mine">{state.status}</output>}
    </UploadForm>, STRICT);
    expect(screen.getByLabelText("E-Mail").className).toBe("in");
    expect(screen.getByRole("button", { name: "Hochladen" }).className).toBe("primary");
    expect(screen.getByTestId("mine").textContent).toBe("idle");
    expect(document.querySelector("form")?.className).toBe("card");
  });

  test("a confirm kept from before a reload is resumed once and reported once", async () => {
    session.setItem(PENDING_UPLOAD_KEY, JSON.stringify({ uploadId: "job7", sessionToken: "token7" }));
    const { client, calls } = scriptedClient();
    const done = vi.fn();
    render(<UploadForm client={client} onUploadComplete={done} />, STRICT);
    await waitFor(() => expect(done).toHaveBeenCalledTimes(1));
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
    });
    expect(calls.confirm).toEqual([{ id: "job7", token: "token7" }]);
    expect(done).toHaveBeenCalledTimes(1);
  });

  test("renders on the server", () => {
    const html = renderToString(<UploadForm enableUpload baseUrl="http://127.0.0.1:8000" />);
    expect(html).toContain('type="email"');
    expect(html).toContain("Upload</button>");
  });
});
