//! Event times: legacy timestamps in their many forms → epoch milliseconds,
//! and epoch milliseconds → the one RFC 3339 form the ledger uses.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Epoch numbers below this are seconds, at or above it milliseconds: 10^11
/// seconds is the year 5138, 10^11 milliseconds is March 1973, so no real
/// event time of either unit falls on the wrong side.
const MILLIS_THRESHOLD: f64 = 1e11;

/// Reads a legacy event time: epoch seconds or milliseconds (integer or
/// fractional), or an RFC 3339 string with any offset.
pub(crate) fn epoch_millis(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => {
            let n = n.as_f64().ok_or_else(|| format!("{n} is not a number"))?;
            if !n.is_finite() || n < 0.0 {
                return Err(format!("{n} is not an epoch time"));
            }
            let ms = if n < MILLIS_THRESHOLD { n * 1000.0 } else { n };
            if ms > 253_402_300_799_999.0 {
                return Err(format!("{n} is after the year 9999"));
            }
            Ok(ms.round() as i64)
        }
        Value::String(s) => {
            let t = OffsetDateTime::parse(s, &Rfc3339)
                .map_err(|_| format!("`{s}` is not an RFC 3339 time"))?;
            Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        other => Err(format!(
            "{} is neither an epoch number nor an RFC 3339 string",
            crate::json::json_kind(other)
        )),
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC with exactly three
/// fractional digits (`2025-11-24T16:00:00.137Z`): one fixed width makes
/// ledger times sort as strings.
pub fn format_millis(ms: i64) -> String {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Written digit by digit: every event header has one, and the general
    // formatter cost more than the rest of the header together.
    let mut out = String::with_capacity(25);
    let year = time.year();
    if year < 0 {
        out.push('-');
    }
    let (hour, minute, second, milli) = time.to_hms_milli();
    push_digits(&mut out, year.unsigned_abs(), 4);
    out.push('-');
    push_digits(&mut out, u32::from(u8::from(time.month())), 2);
    out.push('-');
    push_digits(&mut out, u32::from(time.day()), 2);
    out.push('T');
    push_digits(&mut out, u32::from(hour), 2);
    out.push(':');
    push_digits(&mut out, u32::from(minute), 2);
    out.push(':');
    push_digits(&mut out, u32::from(second), 2);
    out.push('.');
    push_digits(&mut out, u32::from(milli), 3);
    out.push('Z');
    out
}

/// `value` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10_u32.pow(width - 1);
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use proptest::prelude::*;

    proptest! {
        /// The digit-by-digit form is what `time`'s formatter writes, over
        /// every time it can represent.
        #[test]
        fn formats_as_the_general_formatter_does(ms in -377_705_116_800_000_i64..253_402_300_800_000) {
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap()
                .format(&format)
                .unwrap();
            prop_assert_eq!(format_millis(ms), expected);
        }
    }

    #[test]
    fn an_unrepresentable_time_is_the_epoch() {
        assert_eq!(format_millis(i64::MAX), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(1_764_000_000_137), "2025-11-24T16:00:00.137Z");
    }

    #[test]
    fn reads_every_legacy_form() {
        let expected = 1_764_000_000_137;
        assert_eq!(epoch_millis(&json!(1_764_000_000_137_i64)), Ok(expected));
        assert_eq!(epoch_millis(&json!(1_764_000_000.137)), Ok(expected));
        assert_eq!(
            epoch_millis(&json!("2025-11-24T16:00:00.137Z")),
            Ok(expected)
        );
        assert_eq!(
            epoch_millis(&json!("2025-11-24T17:00:00.137+01:00")),
            Ok(expected)
        );
        assert_eq!(epoch_millis(&json!(1_764_000_000)), Ok(1_764_000_000_000));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        assert!(epoch_millis(&json!(-5)).is_err());
        assert!(epoch_millis(&json!(true)).is_err());
        assert!(epoch_millis(&json!("24/11/2025")).is_err());
        assert!(epoch_millis(&json!(1e300)).is_err());
    }

    #[test]
    fn formats_with_fixed_width() {
        assert_eq!(format_millis(1_764_000_000_137), "2025-11-24T16:00:00.137Z");
        assert_eq!(format_millis(1_764_000_000_000), "2025-11-24T16:00:00.000Z");
    }
}
