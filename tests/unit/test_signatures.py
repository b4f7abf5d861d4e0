"""The confirm's check of an object's first bytes against its declared type: pure function, exact boundaries."""

import pytest

from chalicelib.domain import SIGNATURE_BYTES, matches_declared_type

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
WEBP = b"RIFF\x24\x00\x00\x00WEBP"
HEIC = b"\x00\x00\x00\x18ftypheic"
SIGNATURES = {"image/png": PNG, "image/jpeg": JPEG, "image/webp": WEBP, "image/heic": HEIC}


@pytest.mark.parametrize("file_type, signature", SIGNATURES.items())
def test_exactly_the_signature_is_enough_and_one_byte_less_is_refused(file_type, signature):
    assert matches_declared_type(signature, file_type)
    assert matches_declared_type(signature + b"\x00" * 40, file_type)
    assert not matches_declared_type(signature[:-1], file_type)


@pytest.mark.parametrize("file_type", SIGNATURES)
def test_another_type_signature_is_refused_for_each_declared_type(file_type):
    for other_type, other in SIGNATURES.items():
        if other_type != file_type:
            assert not matches_declared_type(other + b"\x00" * 20, file_type), other_type


@pytest.mark.parametrize("content", [
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00",
    b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    b"just a text file, declared as a photo",
    b"\x00" * SIGNATURE_BYTES,
    b"",
])
@pytest.mark.parametrize("file_type", SIGNATURES)
def test_gif_zip_text_and_empty_looking_content_pass_as_no_image_type(content, file_type):
    assert not matches_declared_type(content, file_type)


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"])
def test_every_heif_brand_passes_as_heic(brand):
    assert matches_declared_type(b"\x00\x00\x00\x1cftyp" + brand + b"\x00\x00\x00\x00mif1heic", "image/heic")


@pytest.mark.parametrize("header", [
    b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00",   # AVIF is ISO-BMFF too, but not HEIC
    b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00",   # an MP4 video
    b"\x00\x00\x00\x08ftypheic",                   # a box too small to be an ftyp box
    b"\x00\x00\x00\x18moovheic\x00\x00\x00\x00",   # not an ftyp box
])
def test_other_iso_bmff_files_are_not_heic(header):
    assert not matches_declared_type(header, "image/heic")


def test_a_riff_file_that_is_not_webp_is_refused():
    assert not matches_declared_type(b"RIFF\x24\x00\x00\x00WAVEfmt ", "image/webp")


def test_an_undeclarable_type_never_matches():
    assert not matches_declared_type(PNG, "image/gif")


@pytest.mark.parametrize("box_size, accepted", [(15, False), (16, True), (17, True), (0x01000010, True)])
def test_a_heic_ftyp_box_must_declare_at_least_16_bytes_read_big_endian(box_size, accepted):
    header = box_size.to_bytes(4, "big") + b"ftypheic\x00\x00\x00\x00"

    assert matches_declared_type(header, "image/heic") is accepted
