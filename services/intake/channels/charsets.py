"""Charset labels as mailers write them, read the way browsers and mail readers read them.

Mail names its charsets with labels (`charset=windows-874`, `=?ks_c_5601-1987?B?...?=`). Python's
codec registry misses some that mailers use every day (windows-874, iso-8859-8-i, x-user-defined)
and reads others as the strict standard they name where every mail reader uses the Windows
superset the sender really wrote (`iso-8859-1` is windows-1252, `gb2312` is GBK, `shift_jis` is
cp932, `euc-kr` is cp949). The WHATWG Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels)
is the table browsers and mail readers (Thunderbird's encoding_rs) share: its labels are written
out below as data, each encoding with the Python codec that reads it as the standard says.

Known differences of Python's tables from the standard's, left as Python reads them: windows-874
and windows-1252 leave a few C1 bytes undefined (U+FFFD, where the standard gives the C1 control),
and Python's koi8-u is the Ukrainian table, not KOI8-RU (0xAE and 0xBE, two Belarusian letters).

`decode` never raises and never silently loses the text: a label that lies (UTF-8 bytes sent as
Shift_JIS, 8-bit bytes labelled us-ascii), an unknown label and no label at all fall back to UTF-8
when the bytes are UTF-8, else to chardet's guess among the standard's encodings.
"""

import codecs

import chardet

# The Encoding Standard's label table: each encoding's name, then every label that names it.
# Labels are matched without surrounding ASCII whitespace and without regard to ASCII case.
STANDARD_LABELS: dict[str, tuple[str, ...]] = {
    "utf-8": ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"),
    "ibm866": ("866", "cp866", "csibm866", "ibm866"),
    "iso-8859-2": ("csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592", "iso_8859-2",
                   "iso_8859-2:1987", "l2", "latin2"),
    "iso-8859-3": ("csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593", "iso_8859-3",
                   "iso_8859-3:1988", "l3", "latin3"),
    "iso-8859-4": ("csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594", "iso_8859-4",
                   "iso_8859-4:1988", "l4", "latin4"),
    "iso-8859-5": ("csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5", "iso88595",
                   "iso_8859-5", "iso_8859-5:1988"),
    "iso-8859-6": ("arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic", "ecma-114",
                   "iso-8859-6", "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127", "iso8859-6", "iso88596",
                   "iso_8859-6", "iso_8859-6:1987"),
    "iso-8859-7": ("csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7", "iso-ir-126",
                   "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987", "sun_eu_greek"),
    "iso-8859-8": ("csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e", "iso-ir-138",
                   "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988", "visual"),
    "iso-8859-8-i": ("csiso88598i", "iso-8859-8-i", "logical"),
    "iso-8859-10": ("csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910", "l6", "latin6"),
    "iso-8859-13": ("iso-8859-13", "iso8859-13", "iso885913"),
    "iso-8859-14": ("iso-8859-14", "iso8859-14", "iso885914"),
    "iso-8859-15": ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15", "l9"),
    "iso-8859-16": ("iso-8859-16",),
    "koi8-r": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
    "koi8-u": ("koi8-ru", "koi8-u"),
    "macintosh": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
    "windows-874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874"),
    "windows-1250": ("cp1250", "windows-1250", "x-cp1250"),
    "windows-1251": ("cp1251", "windows-1251", "x-cp1251"),
    "windows-1252": ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
                     "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1",
                     "us-ascii", "windows-1252", "x-cp1252"),
    "windows-1253": ("cp1253", "windows-1253", "x-cp1253"),
    "windows-1254": ("cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599", "iso_8859-9",
                     "iso_8859-9:1989", "l5", "latin5", "windows-1254", "x-cp1254"),
    "windows-1255": ("cp1255", "windows-1255", "x-cp1255"),
    "windows-1256": ("cp1256", "windows-1256", "x-cp1256"),
    "windows-1257": ("cp1257", "windows-1257", "x-cp1257"),
    "windows-1258": ("cp1258", "windows-1258", "x-cp1258"),
    "x-mac-cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
    "gbk": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58", "x-gbk"),
    "gb18030": ("gb18030",),
    "big5": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "euc-jp": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "iso-2022-jp": ("csiso2022jp", "iso-2022-jp"),
    "shift_jis": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis"),
    "euc-kr": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987", "ks_c_5601-1989",
               "ksc5601", "ksc_5601", "windows-949"),
    "replacement": ("csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "iso-2022-kr", "replacement"),
    "utf-16be": ("unicodefffe", "utf-16be"),
    "utf-16le": ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"),
    "x-user-defined": ("x-user-defined",),
}

# The Python codec that decodes each encoding as the standard specifies (x-user-defined and
# replacement have none: see _decode_as).
CODECS: dict[str, str] = {
    "utf-8": "utf-8",
    "ibm866": "cp866",
    "iso-8859-2": "iso8859_2",
    "iso-8859-3": "iso8859_3",
    "iso-8859-4": "iso8859_4",
    "iso-8859-5": "iso8859_5",
    "iso-8859-6": "iso8859_6",
    "iso-8859-7": "iso8859_7",
    "iso-8859-8": "iso8859_8",
    "iso-8859-8-i": "iso8859_8",  # the same bytes as iso-8859-8; "-i" only says the text is in logical order
    "iso-8859-10": "iso8859_10",
    "iso-8859-13": "iso8859_13",
    "iso-8859-14": "iso8859_14",
    "iso-8859-15": "iso8859_15",
    "iso-8859-16": "iso8859_16",
    "koi8-r": "koi8_r",
    "koi8-u": "koi8_u",
    "macintosh": "mac_roman",
    "windows-874": "cp874",
    "windows-1250": "cp1250",
    "windows-1251": "cp1251",
    "windows-1252": "cp1252",
    "windows-1253": "cp1253",
    "windows-1254": "cp1254",
    "windows-1255": "cp1255",
    "windows-1256": "cp1256",
    "windows-1257": "cp1257",
    "windows-1258": "cp1258",
    "x-mac-cyrillic": "mac_cyrillic",
    # The standard reads GBK with its gb18030 decoder: Python's gb18030 reads every GBK sequence as
    # gbk does and the four-byte ones too.
    "gbk": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",  # the standard's Big5 includes the Hong Kong supplement
    # The standard's JIS X 0208 is Windows' (cp932's): NEC row 13 (①, ㈱, ㍻) and rows 89-92, which
    # Python's EUC-JP and ISO-2022-JP tables lack; the jis0208 error handlers below read those.
    "euc-jp": "euc_jp",
    "iso-2022-jp": "iso2022_jp_ext",  # _ext: with the half-width katakana escape (ESC ( I)
    "shift_jis": "cp932",
    "euc-kr": "cp949",  # Unified Hangul Code, the superset every Korean mailer writes
    "utf-16be": "utf-16-be",
    "utf-16le": "utf-16-le",
}

# The labels that promise 7-bit ASCII: bytes over 0x7F under them are the sender's mistake, not windows-1252.
ASCII_LABELS = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968"})
# BOMs override the label (the standard's decode: "BOM sniffing").
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16be"), (codecs.BOM_UTF16_LE, "utf-16le"))
# The encodings chardet may guess for unlabelled bytes (UTF-8 never gets that far): the legacy ones
# mail is written in. The Mac tables and the rarer ISO ones are left out: on short text (a subject,
# a file name) they win guesses far more often than anyone writes mail in them.
DETECTABLE = ("windows-1250", "windows-1251", "windows-1252", "windows-1253", "windows-1254", "windows-1255",
              "windows-1256", "windows-1257", "windows-1258", "windows-874", "koi8-r", "koi8-u", "ibm866",
              "iso-8859-2", "iso-8859-5", "iso-8859-7", "iso-8859-15", "gbk", "gb18030", "big5", "euc-jp",
              "shift_jis", "euc-kr")
DETECT_MAX_BYTES = 64 * 1024  # enough to tell; bounds the time a huge unlabelled body costs
JIS0208_STRICT = "switchyard.jis0208.strict"
JIS0208_REPLACE = "switchyard.jis0208.replace"
JIS0208_CODECS = {"euc_jp": 0x80, "iso2022_jp_ext": 0x00}  # codec -> the high bit its JIS X 0208 bytes carry

_BY_LABEL = {label: name for name, labels in STANDARD_LABELS.items() for label in labels}


def _by_python_name(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Python's canonical codec name of each label it knows -> the standard's encoding for that label.

    So that a label only Python spells ("latin-1", "cp936", "iso2022jp") is read as the standard
    reads the same encoding under its own labels (windows-1252, gbk, iso-2022-jp)."""
    found: dict[str, str] = {}
    for name, labels in table.items():
        for label in labels:
            try:
                found.setdefault(codecs.lookup(label).name, name)
            except LookupError:
                continue
    return found


_BY_PYTHON_NAME = _by_python_name(STANDARD_LABELS)
_X_USER_DEFINED = {byte: 0xF780 + byte - 0x80 for byte in range(0x80, 0x100)}  # the standard's private-use mapping


def _normalized(label: str) -> str:
    return label.strip("\t\n\f\r ").lower()


def encoding_for(label: str | None) -> str | None:
    """The standard's encoding a label names (through Python's aliases too), or None if it names none."""
    if not label:
        return None
    key = _normalized(label)
    if key in _BY_LABEL:
        return _BY_LABEL[key]
    try:
        return _BY_PYTHON_NAME.get(codecs.lookup(key).name)
    except (LookupError, ValueError):
        return None


def _python_only_codec(label: str) -> str | None:
    """A text codec Python knows under `label` that the standard does not name (utf-7, iso-2022-jp-2, cp850)."""
    try:
        name = codecs.lookup(_normalized(label)).name
        b"a".decode(name, "ignore")  # bytes-to-bytes codecs (base64, zlib) are refused here (not on b"")
    except (LookupError, ValueError):
        return None
    return name


def _sjis_pair(first: int, second: int) -> bytes:
    """A JIS X 0208 row/cell pair (0x21-0x7E each) in Shift_JIS form, so cp932 can read it."""
    lead = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
    trail = second + (0x1F if first % 2 else 0x7D)
    return bytes((lead, trail + 1 if first % 2 and trail >= 0x7F else trail))


def _jis0208(error: UnicodeError, strict: bool) -> tuple[str, int]:
    """Error handler for Python's EUC-JP and ISO-2022-JP codecs: the pair they lack, read as cp932 reads it."""
    if not isinstance(error, UnicodeDecodeError) or error.encoding not in JIS0208_CODECS:
        raise error
    high = JIS0208_CODECS[error.encoding]
    pair = bytes(error.object[error.start:error.start + 2])
    if len(pair) == 2 and all(b & 0x80 == high and 0x21 <= b & 0x7F <= 0x7E for b in pair):
        try:
            return _sjis_pair(pair[0] & 0x7F, pair[1] & 0x7F).decode("cp932"), error.start + 2
        except UnicodeDecodeError:
            pass
    if strict:
        raise error
    return "\ufffd", error.end


codecs.register_error(JIS0208_STRICT, lambda error: _jis0208(error, strict=True))
codecs.register_error(JIS0208_REPLACE, lambda error: _jis0208(error, strict=False))


def _decode_as(data: bytes, encoding: str, strict: bool) -> str:
    """`data` in one encoding (the standard's name, or a Python codec name for one it does not name)."""
    if encoding == "replacement":
        # ISO-2022-KR/CN and HZ can hide ASCII in escape sequences: the standard reads them as one U+FFFD.
        return "\ufffd" if data else ""
    if encoding == "x-user-defined":
        return data.decode("latin-1").translate(_X_USER_DEFINED)
    codec = CODECS.get(encoding, encoding)
    if codec in JIS0208_CODECS:
        errors = JIS0208_STRICT if strict else JIS0208_REPLACE
    else:
        errors = "strict" if strict else "replace"
    return data.decode(codec, errors)


def _sniff_bom(data: bytes) -> tuple[str, bytes] | None:
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return encoding, data[len(bom):]
    return None


def _declared(label: str | None, data: bytes) -> str | None:
    """The encoding to try first for a label: the standard's, else Python's, else None (guess)."""
    if not label:
        return None
    if _normalized(label) in ASCII_LABELS and not data.isascii():
        return None  # "us-ascii" over 8-bit text: the label is wrong, so it says nothing
    return encoding_for(label) or _python_only_codec(label)


def decode(data: bytes, label: str | None = None) -> str:
    """Bytes in a declared charset as text, as a mail reader shows them; never raises.

    A byte order mark decides first; then the label, read through the standard's table (or a
    codec only Python knows); bytes the label cannot read, an unknown label and no label are read
    as UTF-8 when they are UTF-8, else as the encoding the label names with U+FFFD for what does
    not fit, else (no usable label) as chardet guesses among the standard's encodings."""
    sniffed = _sniff_bom(data)
    encoding, data = sniffed if sniffed else (_declared(label, data), data)
    if encoding is not None:
        try:
            return _decode_as(data, encoding, strict=True)
        except (UnicodeError, LookupError):
            pass  # a label that lies: most often UTF-8 sent under a legacy label
    # 7-bit bytes a 7-bit label (ISO-2022-JP) cannot read are that encoding broken, not UTF-8.
    if encoding is None or not data.isascii():
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _decode_as(data, encoding or guess(data), strict=False)


def guess(data: bytes) -> str:
    """The standard's encoding chardet finds most likely for unlabelled legacy bytes (windows-1252 if none fits)."""
    found = chardet.detect(data, include_encodings=DETECTABLE, max_bytes=DETECT_MAX_BYTES,
                           prefer_superset=False, no_match_encoding="windows-1252")
    return encoding_for(found.get("encoding")) or "windows-1252"
