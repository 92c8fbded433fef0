//! The cart, kept client-side in a signed cookie (`id:qty,id:qty`). Signing stops a
//! shopper from forging contents; prices are never stored, the backend prices the order.

use std::collections::BTreeMap;

pub const MAX_LINES: usize = 50;
pub const MAX_QUANTITY: u32 = 99;
pub const COOKIE_NAME: &str = "cart";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    lines: BTreeMap<i64, u32>,
}

impl Cart {
    /// The cart in the request's signed cookie (empty when absent or forged).
    pub fn from_jar(jar: &axum_extra::extract::SignedCookieJar) -> Self {
        jar.get(COOKIE_NAME)
            .map(|c| Self::decode(c.value()))
            .unwrap_or_default()
    }

    /// Anything unparseable yields an empty cart rather than an error page.
    pub fn decode(raw: &str) -> Self {
        let lines = raw
            .split(',')
            .filter_map(|pair| {
                let (id, qty) = pair.split_once(':')?;
                let id: i64 = id.parse().ok()?;
                let qty: u32 = qty.parse().ok()?;
                (id > 0 && (1..=MAX_QUANTITY).contains(&qty)).then_some((id, qty))
            })
            .take(MAX_LINES)
            .collect();
        Self { lines }
    }

    pub fn encode(&self) -> String {
        self.lines
            .iter()
            .map(|(id, qty)| format!("{id}:{qty}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Adds to a line, capped at [`MAX_QUANTITY`]; false when the cart is full.
    pub fn add(&mut self, product_id: i64, quantity: u32) -> bool {
        if !self.lines.contains_key(&product_id) && self.lines.len() >= MAX_LINES {
            return false;
        }
        let line = self.lines.entry(product_id).or_insert(0);
        *line = (*line + quantity).min(MAX_QUANTITY);
        true
    }

    /// Sets a line's quantity; zero removes it.
    pub fn set(&mut self, product_id: i64, quantity: u32) {
        if quantity == 0 {
            self.lines.remove(&product_id);
        } else if self.lines.contains_key(&product_id) || self.lines.len() < MAX_LINES {
            self.lines.insert(product_id, quantity.min(MAX_QUANTITY));
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.lines.iter().map(|(id, qty)| (*id, *qty))
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn item_count(&self) -> u32 {
        self.lines.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_merges_lines() {
        let mut cart = Cart::default();
        assert!(cart.add(7, 2));
        assert!(cart.add(3, 1));
        assert!(cart.add(7, 1));
        assert_eq!(cart.encode(), "3:1,7:3");
        assert_eq!(Cart::decode(&cart.encode()), cart);
        assert_eq!(cart.item_count(), 4);
    }

    #[test]
    fn garbage_and_out_of_range_lines_are_dropped() {
        let cart = Cart::decode("1:2,x:1,5:0,-3:1,9:100,4:1");
        assert_eq!(cart.encode(), "1:2,4:1");
    }

    #[test]
    fn quantities_are_capped_and_zero_removes() {
        let mut cart = Cart::default();
        cart.add(1, 500);
        assert_eq!(cart.encode(), "1:99");
        cart.set(1, 0);
        assert!(cart.is_empty());
    }

    #[test]
    fn a_full_cart_refuses_new_lines() {
        let mut cart = Cart::default();
        for id in 1..=MAX_LINES as i64 {
            assert!(cart.add(id, 1));
        }
        assert!(!cart.add(1000, 1));
        assert!(cart.add(1, 1), "existing lines can still grow");
    }
}
