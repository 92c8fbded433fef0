//! A listing page's JSON, written straight from the rows.
//!
//! serde_json checks every byte of every string against its escape table one at a time.
//! Descriptions are most of a listing's bytes and almost never hold anything to escape, so
//! that scan was the largest single cost of an uncached listing on one thread (8 % of the
//! backend's CPU, perf). Here a string is first checked 32 bytes at a time, which the
//! compiler turns into vector compares, and copied as it is when clean; one that needs
//! escaping goes through serde_json, so every escape is serde_json's own. The output is
//! byte for byte what serde_json writes for `ProductPage` (tests below).

use super::products::ListedProduct;

/// `{"items":[…],"next_cursor":…}` for `items`, in `ProductPage`'s field order.
pub(super) fn page(items: &[ListedProduct<'_>], next_cursor: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"items\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        product(item, out);
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    match next_cursor {
        Some(cursor) => string(cursor, out),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn product(item: &ListedProduct<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    integer(item.id, out);
    out.extend_from_slice(b",\"name\":");
    string(item.name, out);
    out.extend_from_slice(b",\"category\":");
    string(item.category, out);
    out.extend_from_slice(b",\"description\":");
    string(item.description, out);
    out.extend_from_slice(b",\"price_cents\":");
    integer(item.price_cents, out);
    out.extend_from_slice(b",\"stock\":");
    integer(item.stock.into(), out);
    out.push(b'}');
}

fn integer(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `text` as a JSON string.
fn string(text: &str, out: &mut Vec<u8>) {
    if needs_escaping(text.as_bytes()) {
        serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether any byte is one JSON escapes: a control character, `"` or `\`.
fn needs_escaping(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    // No early exit inside a chunk, so the fold compiles to vector compares.
    let dirty = |chunk: &[u8]| chunk.iter().fold(false, |dirty, &b| dirty | escaped(b));
    chunks.by_ref().any(dirty) || dirty(chunks.remainder())
}

fn escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::products::ProductPage;

    fn listed<'a>(name: &'a str, description: &'a str) -> ListedProduct<'a> {
        ListedProduct {
            id: i64::MAX,
            name,
            category: "home-kitchen",
            description,
            price_cents: -1,
            stock: i32::MIN,
        }
    }

    fn written(items: &[ListedProduct<'_>], next_cursor: Option<&str>) -> String {
        let mut out = Vec::new();
        page(items, next_cursor, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn serde_json_of(items: &[ListedProduct<'_>], next_cursor: Option<&str>) -> String {
        serde_json::to_string(&ProductPage {
            items: items.iter().map(ListedProduct::to_product).collect(),
            next_cursor: next_cursor.map(str::to_owned),
        })
        .unwrap()
    }

    /// Every byte that needs escaping, at every offset of a string longer than two chunks
    /// (so in a chunk's middle, at its edges and in the remainder), and text that needs none.
    #[test]
    fn writes_what_serde_json_writes_for_the_product_page() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "Kettle".into(),
            "Théière en fonte, 1,2 l — 🫖 für Tee; DEL\u{7f} stays".into(),
            "a".repeat(64),
        ];
        for special in (0u8..0x20).chain([b'"', b'\\']).map(char::from) {
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

    #[test]
    fn only_control_characters_quotes_and_backslashes_need_escaping() {
        for byte in 0..=u8::MAX {
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert_eq!(needs_escaping(&[byte]), expected, "{byte:#x}");
            let mut long = [b'a'; 40];
            long[35] = byte;
            assert_eq!(
                needs_escaping(&long),
                expected,
                "{byte:#x} in the remainder"
            );
        }
    }
}
