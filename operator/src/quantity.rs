//! Kubernetes resource quantities compared by value.
//!
//! The API server stores quantities in canonical form (`1024Mi` comes back
//! as `1Gi`), so a spec and the object made from it must be compared by
//! the amount they denote, never as strings.

/// The amount a quantity denotes, rounded up to a whole unit (as the API
/// server rounds volume sizes), or `None` when `text` is not a quantity:
/// a decimal number with an optional binary (`Ki`..`Ei`), decimal (`k`..`E`,
/// `m`) or exponent (`e3`, `E-2`) suffix.
pub fn amount(text: &str) -> Option<u128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number.starts_with('-') {
        return None;
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 30 {
        return None;
    }
    let mantissa: u128 = digits.parse().ok()?;
    let scale = Scale::parse(suffix)?;
    // value = mantissa / 10^fraction_len * multiplier
    let (numerator, denominator) = match scale {
        Scale::Binary(power) => (mantissa.checked_mul(1u128.checked_shl(power)?)?, 1u128),
        Scale::Decimal(exp) if exp >= 0 => {
            (mantissa.checked_mul(10u128.checked_pow(exp as u32)?)?, 1)
        }
        Scale::Decimal(exp) => (mantissa, 10u128.checked_pow(exp.unsigned_abs())?),
    };
    let denominator = denominator.checked_mul(10u128.checked_pow(fraction.len() as u32)?)?;
    Some(numerator.div_ceil(denominator))
}

/// Whether two quantities denote the same amount (unparsable ones are
/// compared as written).
pub fn same(a: &str, b: &str) -> bool {
    match (amount(a), amount(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A quantity suffix: a power of two or of ten.
enum Scale {
    Binary(u32),
    Decimal(i32),
}

impl Scale {
    fn parse(suffix: &str) -> Option<Self> {
        let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        if let Some(i) = binary.iter().position(|s| *s == suffix) {
            return Some(Scale::Binary(10 * (i as u32 + 1)));
        }
        let decimal = match suffix {
            "" => 0,
            "m" => -3,
            "k" => 3,
            "M" => 6,
            "G" => 9,
            "T" => 12,
            "P" => 15,
            "E" => 18,
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))?;
                let exp: i32 = exp.parse().ok()?;
                return (-30..=30).contains(&exp).then_some(Scale::Decimal(exp));
            }
        };
        Some(Scale::Decimal(decimal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_and_written_forms_are_the_same_amount() {
        assert!(same("1024Mi", "1Gi"));
        assert!(same("1Gi", "1073741824"));
        assert!(same("1.5Gi", "1536Mi"));
        assert!(same("1k", "1000"));
        assert!(same("1e3", "1k"));
        assert!(same("500M", "0.5G"));
        assert!(!same("1Gi", "1G"));
        assert!(!same("2Gi", "1Gi"));
    }

    #[test]
    fn fractions_round_up_and_garbage_is_refused() {
        assert_eq!(amount("1500m"), Some(2));
        assert_eq!(amount("0.1"), Some(1));
        assert_eq!(amount("10Gi"), Some(10 << 30));
        assert_eq!(amount(""), None);
        assert_eq!(amount("Gi"), None);
        assert_eq!(amount("-1Gi"), None);
        assert_eq!(amount("1Xi"), None);
        assert_eq!(amount("1.2.3"), None);
        assert_eq!(amount("99999999999999999999999999999999Ei"), None);
    }
}
