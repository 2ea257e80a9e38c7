//! Numbers as text without the general formatter, which costs as much as
//! hashing a short name: the record path writes several per event (event
//! ids, the source position and dedupe key in an event's headers).

/// An integer in decimal, as `Display` writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal {
    /// Right-aligned: `i64::MIN`, the longest, has 19 digits and a sign.
    text: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(value: i64) -> Self {
        let mut text = [0u8; 20];
        let mut start = text.len();
        let mut magnitude = value.unsigned_abs();
        loop {
            start -= 1;
            text[start] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            text[start] = b'-';
        }
        Self { text, start }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.text[self.start..]
    }
}

/// A 128-bit value as 32 lower-case hex digits, as `{:032x}` writes it.
pub(crate) fn hex128(value: u128) -> [u8; 32] {
    let mut text = [0u8; 32];
    hex::encode_to_slice(value.to_be_bytes(), &mut text).expect("32 hex digits for 16 bytes");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn decimals_read_as_display_writes_them(value in proptest::num::i64::ANY) {
            let (ours, display) = (Decimal::new(value), value.to_string());
            proptest::prop_assert_eq!(ours.as_bytes(), display.as_bytes());
        }

        #[test]
        fn hex_reads_as_the_formatter_writes_it(value in proptest::num::u128::ANY) {
            let (ours, formatted) = (hex128(value), format!("{value:032x}"));
            proptest::prop_assert_eq!(&ours[..], formatted.as_bytes());
        }
    }

    #[test]
    fn the_extremes_fit() {
        for value in [i64::MIN, i64::MAX, 0, -1] {
            assert_eq!(Decimal::new(value).as_bytes(), value.to_string().as_bytes());
        }
        assert_eq!(&hex128(u128::MAX)[..], "f".repeat(32).as_bytes());
    }
}
