"""Choosing a photo, in real Chromium against the real local stack: iPhone photos with an empty type, the drop
zone, paste, and the preview shown before anything is sent."""

import base64
import re
import struct

import pytest

from tests.browser.conftest import PROCESSING_URL
from tests.images import png_bytes

STORAGE_PUT = re.compile(r".*/uploads/uploads/.*")


def heic_bytes(size=4096):
    """What an iPhone photo starts with: an ISO-BMFF `ftyp` box of major brand `heic`, then (here) padding."""
    ftyp = b"ftyp" + b"heic" + struct.pack(">I", 0) + b"mif1" + b"heic"
    box = struct.pack(">I", 4 + len(ftyp)) + ftyp
    meta = struct.pack(">I", 8 + 4) + b"meta" + b"\x00" * 4
    return (box + meta).ljust(size, b"\x00")


def record_puts(page):
    types = []
    page.on("request", lambda request: types.append(request.headers.get("content-type"))
            if request.method == "PUT" and STORAGE_PUT.match(request.url) else None)
    return types


def job_file(db, job_id):
    return db.run("SELECT file_type, file_size, confirmed_at IS NOT NULL FROM uploads WHERE id = :id", id=job_id)


DROP = """([name, data, kind]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: '' }));
  const event = kind === 'paste'
    ? new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true })
    : new DragEvent(kind, { dataTransfer: transfer, bubbles: true, cancelable: true });
  (kind === 'paste' ? document.activeElement || document.body : document.getElementById('drop-zone'))
    .dispatchEvent(event);
  return event.defaultPrevented;
}"""


def test_an_iphone_photo_with_an_empty_type_chosen_in_the_input_is_uploaded_as_heic(page, db, screenshots, tmp_path):
    # Chromium gives a .HEIC file chosen from disk an empty type, as many browsers do.
    iphone_photo = tmp_path / "IMG_0042.HEIC"
    iphone_photo.write_bytes(heic_bytes())
    puts = record_puts(page)
    page.goto("/")
    page.get_by_label("Email").fill("maya@example.com")
    page.get_by_label("Photo").set_input_files(str(iphone_photo))
    assert page.evaluate("() => document.getElementById('photo').files[0].type") == ""

    # No picture the browser can decode: the name, the size and an icon.
    page.locator("#preview").wait_for()
    assert page.locator("#preview-name").text_content() == "IMG_0042.HEIC"
    assert page.locator("#preview-size").text_content() == "4 KB"
    assert page.locator("#preview-icon").is_visible() and page.locator("#preview-image").is_hidden()
    screenshots(page, "upload-heic-chosen")
    page.get_by_role("button", name="Upload").click()

    page.wait_for_url(PROCESSING_URL)
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert puts == ["image/heic"]
    assert job_file(db, job_id) == [["image/heic", 4096, True]]


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_an_iphone_photo_dropped_or_pasted_is_uploaded_as_heic(page, db, how):
    puts = record_puts(page)
    page.goto("/")
    page.get_by_label("Email").fill("maya@example.com")
    taken = page.evaluate(DROP, ["IMG_0043.heic", base64.b64encode(heic_bytes(5000)).decode(), how])

    assert taken is True
    assert page.evaluate("() => document.getElementById('photo').files[0].name") == "IMG_0043.heic"
    page.locator("#preview-name").filter(has_text="IMG_0043.heic").wait_for()
    page.get_by_role("button", name="Upload").click()

    page.wait_for_url(PROCESSING_URL)
    job_id = PROCESSING_URL.match(page.url).group(1)
    assert puts == ["image/heic"]
    assert job_file(db, job_id) == [["image/heic", 5000, True]]


def test_a_photo_the_browser_can_decode_gets_a_thumbnail_and_the_drop_zone_shows_a_drag(page):
    page.goto("/")
    page.get_by_label("Photo").set_input_files(
        {"name": "portrait.png", "mimeType": "image/png", "buffer": png_bytes(300, 200)})
    page.locator("#preview-image").wait_for()
    assert page.locator("#preview-image").get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator("#preview-icon").is_hidden()
    assert page.evaluate("() => document.getElementById('preview-image').naturalWidth") == 144

    page.evaluate("""() => document.getElementById('drop-zone').dispatchEvent(
        new DragEvent('dragenter', { dataTransfer: new DataTransfer(), bubbles: true, cancelable: true }))""")
    assert "dragging" in page.locator("#drop-zone").get_attribute("class")
