//! Durations as Istio's YAML writes them: `10s`, `1.5s`, `250ms`, `1m30s`.
//!
//! Istio accepts Go's duration syntax for its `google.protobuf.Duration`
//! fields, a superset of protobuf's JSON form (`"1.5s"`), so operators'
//! existing files (`baseEjectionTime: 3m`) parse unchanged.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration read from a Go-style duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IstioDuration(pub Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration ({reason}); write it as e.g. 10s, 1.5s, 250ms or 1m30s")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl IstioDuration {
    pub fn parse(input: &str) -> Result<IstioDuration, DurationError> {
        let fail = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        if text == "0" {
            return Ok(IstioDuration(Duration::ZERO));
        }
        if text.starts_with('-') {
            return Err(fail("it is negative"));
        }
        let mut rest = text.strip_prefix('+').unwrap_or(text);
        let mut total_nanos: u128 = 0;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| fail("a number has no unit"))?;
            if number_len == 0 {
                return Err(fail("a unit has no number"));
            }
            let (number, after) = rest.split_at(number_len);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(fail("unknown unit; use h, m, s, ms, us or ns")),
            };
            total_nanos += scaled(number, unit_nanos).ok_or_else(|| fail("bad number"))?;
            rest = after;
        }
        let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| fail("too long"))?;
        let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| fail("too long"))?;
        Ok(IstioDuration(Duration::new(secs, nanos)))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

/// `number` (digits with at most one dot) times `unit_nanos`, exactly.
fn scaled(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for digit in fraction.chars() {
        let d = u128::from(digit.to_digit(10)?);
        scale /= 10;
        total = total.checked_add(d * scale)?;
    }
    Some(total)
}

impl fmt::Display for IstioDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}ns", d.as_nanos())
        }
    }
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IstioDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for IstioDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u128 {
        IstioDuration::parse(text).expect(text).0.as_millis()
    }

    #[test]
    fn go_and_protobuf_forms() {
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("1.5s"), 1_500);
        assert_eq!(ms("0.001s"), 1);
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("3m"), 180_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("0"), 0);
        assert_eq!(
            IstioDuration::parse("1500us").expect("us").0.as_micros(),
            1500
        );
    }

    #[test]
    fn bad_forms_say_why() {
        for bad in ["", "10", "s", "-1s", "1d", "1.2.3s", "ten seconds"] {
            let err = IstioDuration::parse(bad).expect_err(bad);
            assert!(
                err.to_string().contains("is not a duration"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn round_trips_through_text() {
        for text in ["10s", "250ms", "1500ns"] {
            let d = IstioDuration::parse(text).expect(text);
            assert_eq!(IstioDuration::parse(&d.to_string()).expect("again"), d);
        }
    }
}
