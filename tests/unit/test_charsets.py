"""Charset labels read as the WHATWG Encoding Standard and mail readers read them (services/intake/channels/charsets.py).

Every sample is made by encoding text with a real codec (Python's cp932, cp949, euc_jis_2004 ...),
so each test checks a round trip from the bytes a mailer writes back to the text it meant.
"""

import codecs

import pytest

from services.intake.channels import charsets
from services.intake.channels.charsets import decode, encoding_for

THAI = "สวัสดีครับ ผมยังไม่ได้รับพัสดุ"
HEBREW = "שלום, איפה ההזמנה שלי?"
NEC_ROW_13 = "①㈱"  # JIS X 0208 row 13 as NEC and Windows fill it: in every Japanese mailer, not in Python's JIS tables


def iso_2022_jp(text: str) -> bytes:
    """`text` as ISO-2022-JP writes it in JIS X 0208 (ESC $ B ... ESC ( B).

    The JIS row/cell bytes are EUC-JP's with the high bit cleared; euc_jis_2004 has NEC row 13 at
    the same places as Windows, so it yields the bytes a Japanese mailer sends for ① and ㈱."""
    return b"\x1b$B" + bytes(b & 0x7F for b in text.encode("euc_jis_2004")) + b"\x1b(B"


def test_the_label_table_is_the_standards_and_every_encoding_has_a_decoder():
    labels = [label for names in charsets.STANDARD_LABELS.values() for label in names]
    assert len(labels) == len(set(labels)) == 228  # the standard's label count
    for name in charsets.STANDARD_LABELS:
        if name in ("replacement", "x-user-defined"):
            continue
        assert codecs.lookup(charsets.CODECS[name])
    assert set(charsets.CODECS) | {"replacement", "x-user-defined"} == set(charsets.STANDARD_LABELS)


@pytest.mark.parametrize(("label", "encoding"), [
    ("windows-874", "windows-874"), ("TIS-620", "windows-874"), (" iso-8859-11\t", "windows-874"),
    ("ISO-8859-8-I", "iso-8859-8-i"), ("us-ascii", "windows-1252"), ("iso-8859-1", "windows-1252"),
    ("latin5", "windows-1254"), ("gb2312", "gbk"), ("x-sjis", "shift_jis"), ("ks_c_5601-1987", "euc-kr"),
    ("hz-gb-2312", "replacement"), ("unicode", "utf-16le"),
    # Spelled only as Python spells them: read as the standard reads the same encoding.
    ("latin-1", "windows-1252"), ("cp936", "gbk"), ("iso2022jp", "iso-2022-jp"), ("cp932", "shift_jis"),
    ("x-unknown", None), ("", None), (None, None),
])
def test_labels_name_the_standards_encodings(label, encoding):
    assert encoding_for(label) == encoding


@pytest.mark.parametrize(("text", "codec", "label"), [
    (THAI, "cp874", "windows-874"),  # unknown to Python: was read as UTF-8 and lost
    (THAI, "cp874", "tis-620"),  # Python's tis-620 has no €, quotes or dashes: windows-874 does
    ("ราคา 100€ – “ด่วน”", "cp874", "iso-8859-11"),
    (HEBREW, "iso8859_8", "iso-8859-8-i"),  # unknown to Python
    ("€ 20 – “Paket” …", "cp1252", "iso-8859-1"),  # Outlook's iso-8859-1 is windows-1252
    ("Çok teşekkürler – €", "cp1254", "iso-8859-9"),
    ("我的包裹 碁 镕", "gbk", "gb2312"),  # GBK characters under the gb2312 label
    ("包裹 \U00020000", "gb18030", "gb18030"),  # a four-byte sequence
    ("똠방각하 뷁", "cp949", "euc-kr"),  # Unified Hangul Code syllables outside KS X 1001
    ("荷物 " + NEC_ROW_13 + " ⅰ", "cp932", "shift_jis"),  # NEC row 13 and an IBM extension
    ("香港 嘅 嘢 㗎", "big5hkscs", "big5"),  # Hong Kong supplement characters under the big5 label
    ("Где мой заказ?", "koi8_r", "koi8-r"),
])
def test_labels_decode_as_mail_readers_decode_them(text, codec, label):
    data = text.encode(codec)
    assert decode(data, label) == text


@pytest.mark.parametrize("label", ["iso-2022-jp", "csISO2022JP"])
def test_iso_2022_jp_reads_nec_row_13(label):
    data = iso_2022_jp("荷物" + NEC_ROW_13) + b" ok"
    assert data == b"\x1b$B2YJ*-!-j\x1b(B ok"
    assert "①㈱".encode("cp932") == b"\x87\x40\x87\x8a"  # the same characters in Shift_JIS, cell for cell
    assert decode(data, label) == "荷物①㈱ ok"


def test_iso_2022_jp_still_reads_half_width_katakana_and_plain_text():
    assert decode(b"\x1b(I12\x1b(B abc", "iso-2022-jp") == "ｱｲ abc"
    assert decode("荷物がまだ届きません。".encode("iso2022_jp"), "iso-2022-jp") == "荷物がまだ届きません。"


def test_euc_jp_reads_nec_row_13_and_jis_x_0212():
    assert decode(("荷物" + NEC_ROW_13).encode("euc_jis_2004"), "euc-jp") == "荷物①㈱"
    assert decode("丂".encode("euc_jp"), "euc-jp") == "丂"  # a JIS X 0212 character (0x8F lead byte)


def test_a_broken_jis_sequence_is_replaced_not_fatal():
    assert decode(b"\x1b$B\x7f\x7f\x1b(B ok", "iso-2022-jp").endswith(" ok")
    assert "\ufffd" in decode(b"\x1b$B\x7f\x7f\x1b(B ok", "iso-2022-jp")


def test_x_user_defined_and_the_replacement_encoding_follow_the_standard():
    assert decode(b"ab\x80\xff", "x-user-defined") == "ab\uf780\uf7ff"
    # ISO-2022-KR can hide ASCII in escape sequences: the standard reads the whole text as one U+FFFD.
    assert decode("안녕".encode("iso2022_kr"), "iso-2022-kr") == "\ufffd"
    assert decode(b"", "iso-2022-kr") == ""


def test_a_byte_order_mark_outranks_the_label():
    assert decode(codecs.BOM_UTF8 + "Grüße".encode(), "windows-1252") == "Grüße"
    assert decode(codecs.BOM_UTF16_BE + "Grüße".encode("utf-16-be"), "iso-8859-1") == "Grüße"
    assert decode("Grüße".encode("utf-16-le"), "utf-16") == "Grüße"  # the label utf-16 means little-endian


def test_a_label_that_lies_still_gives_the_text():
    assert decode("Grüße".encode(), "us-ascii") == "Grüße"  # 8-bit UTF-8 under us-ascii
    assert decode("Grüße aus Köln, wo bleibt mein Paket?".encode("cp1252"), "us-ascii") == \
        "Grüße aus Köln, wo bleibt mein Paket?"
    assert decode("荷物がまだ届きません。".encode(), "iso-2022-jp") == "荷物がまだ届きません。"  # UTF-8 sent as JIS


@pytest.mark.parametrize("label", [None, "x-unknown", "unknown-8bit", "charset"])
def test_unknown_or_missing_labels_fall_back_to_utf8_then_a_guess(label):
    assert decode("Здравствуйте! Где мой заказ?".encode(), label) == "Здравствуйте! Где мой заказ?"
    assert decode("Добрый день, прошу вернуть деньги.".encode("cp1251"), label) == "Добрый день, прошу вернуть деньги."
    assert decode("Здравствуйте! Где мой заказ?".encode("koi8-r"), label) == "Здравствуйте! Где мой заказ?"
    assert decode("荷物がまだ届きません。".encode("cp932"), label) == "荷物がまだ届きません。"


def test_codecs_only_python_knows_are_used_and_non_text_codecs_are_not():
    assert decode(b"Hi Mom -+Jjo--!", "utf-7") == "Hi Mom -\u263a-!"
    assert decode("€ caf\xe9".encode("cp1252"), "latin-1") == "€ caf\xe9"  # read as windows-1252, like iso-8859-1
    assert decode(b"aGVsbG8=", "base64") == "aGVsbG8="  # a bytes-to-bytes codec is no charset
    assert decode(b"plain", "undefined") == "plain"


def test_decode_never_raises_on_garbage():
    for label in (None, "utf-8", "shift_jis", "euc-jp", "iso-2022-jp", "gb18030", "big5", "utf-16be", "nonsense"):
        assert isinstance(decode(bytes(range(256)) * 2, label), str)
