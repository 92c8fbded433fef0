//! A listing page's JSON, written straight from the rows.
//!
//! serde_json checks every byte of every string against its escape table one at a time.
//! Descriptions are most of a listing's bytes and almost never hold anything to escape, so
//! that scan was the largest single cost of an uncached listing on one thread (8 % of the
//! backend's CPU, perf). Here a string is first checked 32 bytes at a time, which the
//! compiler turns into vector compares, and copied as it is when clean; one that needs
//! escaping goes through serde_json, so every escape is serde_json's own. The output is
//! byte for byte what serde_json writes for `ProductPage` (tests below).
//!
//! The rows' text arrives unchecked ([`RawText`]): the same pass finds bytes outside ASCII,
//! and only a string with some is checked to be UTF-8 before it is written.

use super::products::{ListedProduct, NotUtf8, RawText};

/// `{"items":[…],"next_cursor":…}` for `items`, in `ProductPage`'s field order; `Err` when
/// a row's text is not UTF-8 (then `out` holds part of a page, to be thrown away).
pub(super) fn page(
    items: &[ListedProduct<'_>],
    next_cursor: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), NotUtf8> {
    out.extend_from_slice(b"{\"items\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        product(item, out)?;
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    match next_cursor {
        Some(cursor) => string(RawText(cursor.as_bytes()), out)?,
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(())
}

fn product(item: &ListedProduct<'_>, out: &mut Vec<u8>) -> Result<(), NotUtf8> {
    out.extend_from_slice(b"{\"id\":");
    integer(item.id, out);
    out.extend_from_slice(b",\"name\":");
    string(item.name, out)?;
    out.extend_from_slice(b",\"category\":");
    string(item.category, out)?;
    out.extend_from_slice(b",\"description\":");
    string(item.description, out)?;
    out.extend_from_slice(b",\"price_cents\":");
    integer(item.price_cents, out);
    out.extend_from_slice(b",\"stock\":");
    integer(item.stock.into(), out);
    out.push(b'}');
    Ok(())
}

fn integer(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `text` as a JSON string, or `Err` when it is not UTF-8.
fn string(text: RawText<'_>, out: &mut Vec<u8>) -> Result<(), NotUtf8> {
    let bytes = text.0;
    // ASCII that needs no escaping is UTF-8 and written as it is: one pass for both checks.
    if any_byte(bytes, |b| escaped(b) | (b >= 0x80)) {
        let text = text.as_str()?;
        if any_byte(bytes, escaped) {
            serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
            return Ok(());
        }
    }
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
    Ok(())
}

/// Whether `test` holds for any byte, checked 32 bytes at a time. `test` must not hold for
/// a space: the last partial chunk is padded with spaces and checked whole, since checked
/// byte by byte, names and categories (shorter than a chunk) cost more than descriptions
/// (callgrind: 14 instructions a byte, against under one).
fn any_byte(bytes: &[u8], test: impl Fn(u8) -> bool) -> bool {
    const CHUNK: usize = 32;
    // No early exit inside a chunk, so the fold compiles to vector compares.
    let any = |chunk: &[u8; CHUNK]| chunk.iter().fold(false, |any, &b| any | test(b));
    let mut chunks = bytes.chunks_exact(CHUNK);
    if chunks
        .by_ref()
        .any(|chunk| any(chunk.try_into().expect("a whole chunk")))
    {
        return true;
    }
    let rest = chunks.remainder();
    let mut padded = [b' '; CHUNK];
    padded[..rest.len()].copy_from_slice(rest);
    any(&padded)
}

/// Whether JSON escapes `byte`: a control character, `"` or `\`.
fn escaped(byte: u8) -> bool {
    // `|`, not `||`: no branch per byte, so the chunked scan stays vector compares.
    (byte < 0x20) | (byte == b'"') | (byte == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::products::ProductPage;

    fn listed<'a>(name: &'a str, description: &'a str) -> ListedProduct<'a> {
        ListedProduct {
            id: i64::MAX,
            name: RawText(name.as_bytes()),
            category: RawText(b"home-kitchen"),
            description: RawText(description.as_bytes()),
            price_cents: -1,
            stock: i32::MIN,
        }
    }

    fn written(items: &[ListedProduct<'_>], next_cursor: Option<&str>) -> String {
        let mut out = Vec::new();
        page(items, next_cursor, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn serde_json_of(items: &[ListedProduct<'_>], next_cursor: Option<&str>) -> String {
        serde_json::to_string(&ProductPage {
            items: items
                .iter()
                .map(|item| item.to_product().unwrap())
                .collect(),
            next_cursor: next_cursor.map(str::to_owned),
        })
        .unwrap()
    }

    /// Every byte that needs escaping and characters beyond ASCII, at every offset of a
    /// string longer than two chunks (so in a chunk's middle, at its edges and in the
    /// remainder), and text that needs none.
    #[test]
    fn writes_what_serde_json_writes_for_the_product_page() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "Kettle".into(),
            "Théière en fonte, 1,2 l — 🫖 für Tee; DEL\u{7f} stays".into(),
            "a".repeat(64),
        ];
        let beyond_ascii = ['é', '—', '🫖'];
        for special in (0u8..0x20)
            .chain([b'"', b'\\'])
            .map(char::from)
            .chain(beyond_ascii)
        {
            for at in [0, 1, 31, 32, 33, 63, 64, 70] {
                let mut text = "x".repeat(70);
                text.insert(at, special);
                texts.push(text);
            }
        }
        for text in &texts {
            let items = [listed(text, text), listed("plain", "plain")];
            for cursor in [None, Some(text.as_str())] {
                assert_eq!(
                    written(&items, cursor),
                    serde_json_of(&items, cursor),
                    "{text:?}"
                );
            }
        }
        assert_eq!(written(&[], None), serde_json_of(&[], None));
    }

    /// The database's text is not trusted to be UTF-8: a listing holding text that is not
    /// fails whole, wherever the bad bytes sit, with or without bytes to escape nearby.
    #[test]
    fn text_that_is_not_utf8_fails_the_page() {
        let broken: [&[u8]; 4] = [b"\x80", b"\xff", b"\xc3", b"\xe2\x80"];
        for bad in broken {
            for at in [0, 31, 32, 40, 70] {
                for neighbour in [&b"x"[..], b"\""] {
                    let mut text = b"x".repeat(70);
                    text.splice(at..at, bad.iter().chain(neighbour).copied());
                    let mut item = listed("plain", "plain");
                    item.description = RawText(&text);
                    let mut out = Vec::new();
                    assert!(
                        page(&[item], None, &mut out).is_err(),
                        "{bad:?} at {at} beside {neighbour:?} was written"
                    );
                }
            }
        }
    }

    #[test]
    fn only_control_characters_quotes_and_backslashes_need_escaping() {
        for byte in 0..=u8::MAX {
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert_eq!(any_byte(&[byte], escaped), expected, "{byte:#x}");
            let mut long = [b'a'; 40];
            long[35] = byte;
            assert_eq!(
                any_byte(&long, escaped),
                expected,
                "{byte:#x} in the remainder"
            );
        }
    }
}
