//! Resource quantities (`100m`, `1.5Gi`, `2e3`, `128974848`).
//!
//! A [`Quantity`] holds its value exactly as a signed count of nano-units
//! (10⁻⁹), the finest precision Kubernetes keeps: parsing rounds anything
//! finer *up* (away from zero), so asking for a sliver of a resource never
//! becomes asking for none. It also remembers the notation family it was
//! written in, which decides how it prints back (`1.5Gi` prints as `1536Mi`,
//! `0.5` as `500m`), matching Kubernetes' canonical form.
//!
//! Limits: binary-suffixed values are capped at 2⁶³−1 units as in
//! Kubernetes; any value beyond about ±1.7·10²⁹ units saturates (Kubernetes
//! would keep such absurd decimal values exactly).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Add, Neg, Sub};
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

const NANO_PER_UNIT: i128 = 1_000_000_000;
const NANO_PER_MILLI: i128 = 1_000_000;
/// Kubernetes caps binary-SI quantities at the largest int64.
const MAX_BINARY_NANO: i128 = (i64::MAX as i128) * NANO_PER_UNIT;

/// A quantity string could not be parsed. The messages are Kubernetes'
/// own (clients match on them); `input` holds the offending string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form number + optional suffix.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong {
        /// The offending string.
        input: String,
    },
    /// The number part has no digits where Kubernetes needs some.
    #[error("unable to parse numeric part of quantity")]
    Numeric {
        /// The offending string.
        input: String,
    },
    /// The suffix is not a known SI, binary or exponent suffix.
    #[error("unable to parse quantity's suffix")]
    Suffix {
        /// The offending string.
        input: String,
    },
}

impl QuantityError {
    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        match self {
            QuantityError::FormatWrong { input }
            | QuantityError::Numeric { input }
            | QuantityError::Suffix { input } => input,
        }
    }
}

/// The notation family a quantity prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Powers of 1000: `n u m "" k M G T P E`.
    #[default]
    DecimalSI,
    /// Powers of 1024: `Ki Mi Gi Ti Pi Ei`.
    BinarySI,
    /// Scientific: `e3`, `E-6`.
    DecimalExponent,
}

/// An exact resource amount; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nano: i128,
    format: Format,
}

enum Base {
    Ten(i64),
    Two(u32),
}

fn interpret_suffix(suffix: &str) -> Option<(Base, Format)> {
    let dec = |e| Some((Base::Ten(e), Format::DecimalSI));
    let bin = |e| Some((Base::Two(e), Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => s[1..]
            .parse::<i64>()
            .ok()
            .map(|e| (Base::Ten(e), Format::DecimalExponent)),
        _ => None,
    }
}

/// Splits `[+-]digits[.digits]suffix` the way Kubernetes scans it.
/// Returns (negative, integer digits, fraction digits, suffix).
fn scan(s: &str) -> Option<(bool, &str, &str, &str)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    match b.first() {
        Some(b'-') => {
            negative = true;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let digits_end = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_end(pos);
    let int = &s[pos..int_end];
    pos = int_end;
    let mut frac = "";
    if b.get(pos) == Some(&b'.') {
        let frac_end = digits_end(pos + 1);
        frac = &s[pos + 1..frac_end];
        pos = frac_end;
    }
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && (b[pos] == b'+' || b[pos] == b'-') {
        pos += 1;
    }
    pos = digits_end(pos);
    if pos < b.len() {
        return None;
    }
    Some((negative, int, frac, &s[suffix_start..]))
}

/// Multiplies a big-endian decimal digit string by 2^exp, exactly.
fn times_power_of_two(digits: &[u8], exp: u32) -> Vec<u8> {
    // Little-endian digit values for easy carrying.
    let mut v: Vec<u8> = digits.iter().rev().map(|d| d - b'0').collect();
    for _ in 0..exp {
        let mut carry = 0u8;
        for d in v.iter_mut() {
            let x = *d * 2 + carry;
            *d = x % 10;
            carry = x / 10;
        }
        if carry > 0 {
            v.push(carry);
        }
    }
    v.iter().rev().map(|d| d + b'0').collect()
}

/// Parses decimal digits into u128, `None` on overflow.
fn parse_u128(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?.checked_add(u128::from(d - b'0'))
    })
}

/// `digits × 10^shift`, rounded up to an integer, saturating.
fn scale_round_up(digits: &[u8], shift: i128) -> u128 {
    if shift >= 0 {
        let Ok(shift) = u32::try_from(shift) else {
            return u128::MAX;
        };
        parse_u128(digits)
            .and_then(|v| 10u128.checked_pow(shift).and_then(|p| v.checked_mul(p)))
            .unwrap_or(u128::MAX)
    } else {
        let drop = usize::try_from(-shift).unwrap_or(usize::MAX);
        if drop >= digits.len() {
            // Digits are non-zero here, so a positive fraction remains.
            return 1;
        }
        let (int, frac) = digits.split_at(digits.len() - drop);
        let int = parse_u128(int).unwrap_or(u128::MAX);
        if frac.iter().any(|d| *d != b'0') {
            int.saturating_add(1)
        } else {
            int
        }
    }
}

impl Quantity {
    /// Parses Kubernetes' quantity syntax.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let input = || s.to_string();
        if s.is_empty() {
            return Err(QuantityError::FormatWrong { input: input() });
        }
        let (negative, int, frac, suffix) =
            scan(s).ok_or_else(|| QuantityError::FormatWrong { input: input() })?;
        let (base, mut format) =
            interpret_suffix(suffix).ok_or_else(|| QuantityError::Suffix { input: input() })?;

        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let first_nonzero = digits
            .iter()
            .position(|d| *d != b'0')
            .unwrap_or(digits.len());
        digits.drain(..first_nonzero);

        if int.is_empty() && frac.is_empty() {
            // Kubernetes reads a digit-less number as 0 on its fast path and
            // fails to parse it on its slow path; keep both outcomes.
            let slow = match base {
                Base::Ten(e) => e < -9,
                Base::Two(e) => e >= 50,
            };
            if slow {
                return Err(QuantityError::Numeric { input: input() });
            }
        }

        let (shift, digits) = match base {
            Base::Ten(e) => (i128::from(e) - frac.len() as i128 + 9, digits),
            Base::Two(e) => (9 - frac.len() as i128, times_power_of_two(&digits, e)),
        };
        let magnitude = if digits.is_empty() {
            0
        } else {
            scale_round_up(&digits, shift)
        };
        let cap = if format == Format::BinarySI {
            MAX_BINARY_NANO as u128
        } else {
            i128::MAX as u128
        };
        let magnitude = magnitude.min(cap) as i128;
        if format == Format::BinarySI && magnitude > 0 && magnitude < NANO_PER_UNIT {
            // Fractions of one unit have no binary spelling.
            format = Format::DecimalSI;
        }
        Ok(Quantity {
            nano: if negative { -magnitude } else { magnitude },
            format,
        })
    }

    /// A quantity of `nano` nano-units.
    pub fn from_nano(nano: i128, format: Format) -> Quantity {
        Quantity { nano, format }
    }

    /// A quantity of `milli` thousandths (e.g. CPU millicores), DecimalSI.
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nano: i128::from(milli) * NANO_PER_MILLI,
            format: Format::DecimalSI,
        }
    }

    /// A quantity of `value` whole units (e.g. bytes, with BinarySI).
    pub fn from_value(value: i64, format: Format) -> Quantity {
        Quantity {
            nano: i128::from(value) * NANO_PER_UNIT,
            format,
        }
    }

    /// The exact value in nano-units.
    pub fn as_nano(&self) -> i128 {
        self.nano
    }

    /// The notation family.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.nano == 0
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        match self.nano.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// Divides by `per`, rounding away from zero, saturating to i64.
    fn scaled_round_up(&self, per: i128) -> i64 {
        let q = self.nano / per;
        let q = if self.nano % per != 0 {
            q + self.nano.signum()
        } else {
            q
        };
        i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
    }

    /// The value in thousandths, rounded up (away from zero) like
    /// Kubernetes' `MilliValue()`; saturates at the i64 range.
    pub fn to_milli(&self) -> i64 {
        self.scaled_round_up(NANO_PER_MILLI)
    }

    /// The value in whole units, rounded up (away from zero) like
    /// Kubernetes' `Value()`; saturates at the i64 range.
    pub fn value(&self) -> i64 {
        self.scaled_round_up(NANO_PER_UNIT)
    }

    /// [`Quantity::value`] under the name memory and storage callers expect.
    pub fn to_bytes(&self) -> i64 {
        self.value()
    }

    /// An approximate floating-point value (for scoring, not accounting).
    pub fn as_f64(&self) -> f64 {
        self.nano as f64 / NANO_PER_UNIT as f64
    }

    /// Sum, or `None` on overflow. Keeps this quantity's format unless it
    /// is zero, as Kubernetes does.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nano: self.nano.checked_add(other.nano)?,
            format: self.result_format(other),
        })
    }

    /// Difference, or `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nano: self.nano.checked_sub(other.nano)?,
            format: self.result_format(other),
        })
    }

    fn result_format(&self, other: &Quantity) -> Format {
        if self.nano == 0 {
            other.format
        } else {
            self.format
        }
    }

    /// Kubernetes' canonical spelling: no fractions, the largest suffix
    /// that keeps the number an integer.
    pub fn canonical(&self) -> String {
        if self.nano == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI
            && (self.nano.abs() < 1024 * NANO_PER_UNIT || self.nano % NANO_PER_UNIT != 0)
        {
            // Small or fractional values would need rounding in binary.
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut units = self.nano / NANO_PER_UNIT;
            let mut power = 0;
            while power < 6 && units % 1024 == 0 {
                units /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{units}{suffix}");
        }
        // Move factors of ten into a power-of-ten exponent, then back out
        // until the exponent is a multiple of three.
        let mut mantissa = self.nano;
        let mut exponent: i32 = -9;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        let rem = exponent.rem_euclid(3);
        exponent -= rem;
        mantissa *= 10i128.pow(rem as u32);
        if format == Format::DecimalExponent {
            return if exponent == 0 {
                mantissa.to_string()
            } else {
                format!("{mantissa}e{exponent}")
            };
        }
        if exponent > 18 {
            // Beyond exa there is no SI suffix; fold the rest into the number.
            mantissa *= 10i128.pow((exponent - 18) as u32);
            exponent = 18;
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        };
        format!("{mantissa}{suffix}")
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nano == other.nano
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nano.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nano.cmp(&other.nano)
    }
}

impl Add for Quantity {
    type Output = Quantity;

    /// Saturating sum.
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity {
            nano: self.nano.saturating_add(rhs.nano),
            format: self.result_format(&rhs),
        }
    }
}

impl Sub for Quantity {
    type Output = Quantity;

    /// Saturating difference.
    fn sub(self, rhs: Quantity) -> Quantity {
        Quantity {
            nano: self.nano.saturating_sub(rhs.nano),
            format: self.result_format(&rhs),
        }
    }
}

impl Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity {
            nano: self.nano.saturating_neg(),
            format: self.format,
        }
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::default(), |a, b| a + b)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl TryFrom<&K8sQuantity> for Quantity {
    type Error = QuantityError;

    /// Surrounding whitespace is ignored, as when Kubernetes decodes JSON.
    fn try_from(q: &K8sQuantity) -> Result<Self, Self::Error> {
        Quantity::parse(q.0.trim())
    }
}

impl From<Quantity> for K8sQuantity {
    fn from(q: Quantity) -> Self {
        K8sQuantity(q.canonical())
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    /// Accepts a string or, as Kubernetes does, a bare JSON number.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string such as \"100m\" or \"1Gi\", or a number")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v.trim()).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_exact_values() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("100m", 100_000_000),
            ("1", 1_000_000_000),
            ("1.5", 1_500_000_000),
            ("1.5Gi", 1_610_612_736 * NANO_PER_UNIT),
            ("1Ki", 1024 * NANO_PER_UNIT),
            ("2e3", 2000 * NANO_PER_UNIT),
            ("2E3", 2000 * NANO_PER_UNIT),
            ("1e-3", 1_000_000),
            ("128974848", 128_974_848 * NANO_PER_UNIT),
            ("129M", 129_000_000 * NANO_PER_UNIT),
            ("123Mi", 123 * 1024 * 1024 * NANO_PER_UNIT),
            ("1n", 1),
            ("1u", 1000),
            ("5k", 5000 * NANO_PER_UNIT),
            ("1E", 1_000_000_000_000_000_000 * NANO_PER_UNIT),
            ("-1.5", -1_500_000_000),
            ("+2", 2 * NANO_PER_UNIT),
            ("007", 7 * NANO_PER_UNIT),
            (".5", 500_000_000),
            ("5.", 5 * NANO_PER_UNIT),
            ("0.5Ki", 512 * NANO_PER_UNIT),
            ("1.G", NANO_PER_UNIT * NANO_PER_UNIT),
            // Kubernetes' scanner reads these digit-less forms as zero.
            (".", 0),
            ("-", 0),
            ("Ki", 0),
        ];
        for (s, nano) in cases {
            assert_eq!(q(s).as_nano(), *nano, "{s}");
        }
    }

    #[test]
    fn rounds_up_below_nano() {
        assert_eq!(q("0.1n").as_nano(), 1);
        assert_eq!(q("1.0000000001").as_nano(), 1_000_000_001);
        assert_eq!(q("-0.1n").as_nano(), -1);
        assert_eq!(q("1e-100").as_nano(), 1);
        assert_eq!(q("0.0000000001Ki").as_nano(), 103);
        assert_eq!(
            q("1.000000000000000000000000000000000000000001").as_nano(),
            1_000_000_001
        );
        assert_eq!(q("0e-100").as_nano(), 0);
    }

    #[test]
    fn caps_and_saturates() {
        assert_eq!(q("8Ei").as_nano(), MAX_BINARY_NANO);
        assert_eq!(q("8Ei").canonical(), "9223372036854775807");
        assert_eq!(q("7Ei").canonical(), "7Ei");
        assert_eq!(q("1e400").as_nano(), i128::MAX);
        assert_eq!(q("1e400").value(), i64::MAX);
        assert_eq!(q("-1e400").value(), i64::MIN);
        assert_eq!(
            q("99999999999999999999999999999999999999999999").as_nano(),
            i128::MAX
        );
    }

    #[test]
    fn errors_use_kubernetes_messages() {
        let fmt = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
        for bad in [
            "", "abc", "1 Gi", "1.2.3", "1Gx", "1Qi", " 1", "1e3.5", "1KiB",
        ] {
            let e = Quantity::parse(bad).unwrap_err();
            assert_eq!(e.to_string(), fmt, "{bad:?}");
            assert_eq!(e.input(), bad);
        }
        for bad in ["1kk", "1ki", "1e", "1Ki5", "1e+", "1iE", "--1"] {
            assert_eq!(
                Quantity::parse(bad).unwrap_err().to_string(),
                "unable to parse quantity's suffix",
                "{bad:?}"
            );
        }
        assert_eq!(
            Quantity::parse(".e-100").unwrap_err(),
            QuantityError::Numeric {
                input: ".e-100".to_string()
            }
        );
        assert_eq!(
            Quantity::parse("Ei").unwrap_err().to_string(),
            "unable to parse numeric part of quantity"
        );
    }

    #[test]
    fn milli_and_value_round_up() {
        assert_eq!(q("100m").to_milli(), 100);
        assert_eq!(q("1").to_milli(), 1000);
        assert_eq!(q("0.1m").to_milli(), 1);
        assert_eq!(q("1n").to_milli(), 1);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("-0.1m").to_milli(), -1);
        assert_eq!(q("1Gi").to_bytes(), 1 << 30);
        assert_eq!(q("129M").value(), 129_000_000);
        assert_eq!(q("0").value(), 0);
        assert_eq!(q("10E").to_milli(), i64::MAX);
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("0", "0"),
            ("0Ki", "0"),
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1000", "1k"),
            ("1000m", "1"),
            ("1.5Gi", "1536Mi"),
            ("1024", "1024"),
            ("1Ki", "1Ki"),
            ("1536Ki", "1536Ki"),
            ("1048576Ki", "1Gi"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("2e3", "2e3"),
            ("1e-3", "1e-3"),
            ("1.5e3", "1500"),
            ("12e5", "1200e3"),
            ("128974848", "128974848"),
            ("129M", "129M"),
            ("129e6", "129e6"),
            ("1.1n", "2n"),
            ("10u", "10u"),
            ("-100m", "-100m"),
            ("-1Gi", "-1Gi"),
            ("0.0001Ki", "102400u"),
            ("1E", "1E"),
            ("1e21", "1e21"),
            ("1000E", "1000E"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).canonical(), want, "{input}");
            // The canonical form parses back to the same value.
            assert_eq!(q(want), q(input), "{input}");
        }
        assert_eq!(q("0.0001Ki").format(), Format::DecimalSI);
        assert_eq!(q("1Ki").format(), Format::BinarySI);
        assert_eq!(q("2e3").format(), Format::DecimalExponent);
    }

    #[test]
    fn comparisons_and_arithmetic() {
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("100m") < q("0.2"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1").cmp(&q("1000m")), Ordering::Equal);
        let mut v = vec![q("1Gi"), q("1"), q("500m")];
        v.sort();
        assert_eq!(v, vec![q("500m"), q("1"), q("1Gi")]);
        assert_eq!((q("1Gi") + q("512Mi")).canonical(), "1536Mi");
        assert_eq!((q("0") + q("1Ki")).format(), Format::BinarySI);
        assert_eq!((q("1") - q("250m")).canonical(), "750m");
        assert_eq!((-q("1")).value(), -1);
        let total: Quantity = ["100m", "200m", "1"].iter().map(|s| q(s)).sum();
        assert_eq!(total.to_milli(), 1300);
        assert_eq!(q("1").checked_add(&q("1")).map(|x| x.value()), Some(2));
        assert!(
            Quantity::from_nano(i128::MAX, Format::DecimalSI)
                .checked_add(&q("1"))
                .is_none()
        );
        assert_eq!(q("1").checked_sub(&q("2")).map(|x| x.signum()), Some(-1));
        assert!(q("0").is_zero());
        assert_eq!(Quantity::from_milli(250), q("250m"));
        assert_eq!(
            Quantity::from_value(2048, Format::BinarySI).canonical(),
            "2Ki"
        );
        assert!((q("1.5").as_f64() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn conversions() {
        let k = K8sQuantity(" 1.5Gi ".to_string());
        let parsed = Quantity::try_from(&k).unwrap();
        assert_eq!(K8sQuantity::from(parsed).0, "1536Mi");
        let v: Quantity = serde_json::from_str("\"250m\"").unwrap();
        assert_eq!(v.to_milli(), 250);
        let n: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(n.value(), 2);
        let f: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(f.to_milli(), 500);
        assert_eq!(serde_json::to_string(&q("0.5")).unwrap(), "\"500m\"");
        assert!(serde_json::from_str::<Quantity>("\"x\"").is_err());
        assert_eq!("2Gi".parse::<Quantity>().unwrap().to_string(), "2Gi");
    }
}
