//! Small pieces of HTTP's field syntax (RFC 9110 §5.6) that the server side and the proxy
//! both read and write: optional whitespace, comma-separated lists, `Content-Length`, and
//! decimal numbers written without `fmt`.

/// `value` without the optional whitespace (SP, HTAB) around it.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed, empty elements skipped.
pub(crate) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), also as a list of identical values. `None` for
/// anything else: sign, spaces inside, hex, empty, differing values, overflow.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let mut result = None;
    for element in value.split(|&b| b == b',').map(trim_ows) {
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = element.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        match result {
            Some(prev) if prev != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// `n` in decimal, written at the end of `digits`; returns the digits written.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_grammar() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"5, 5"), Some(5));
        assert_eq!(content_length(b"5,6"), None);
        assert_eq!(content_length(b"+5"), None);
        assert_eq!(content_length(b"-5"), None);
        assert_eq!(content_length(b"0x5"), None);
        assert_eq!(content_length(b"5 5"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b","), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
        assert_eq!(
            content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(content_length(b"18446744073709551616"), None);
        assert_eq!(content_length(b"00042"), Some(42));
    }

    #[test]
    fn lists_skip_empty_elements_and_whitespace() {
        let got: Vec<&[u8]> = list(b" , a ,\tb,,c\t, ").collect();
        assert_eq!(got, [&b"a"[..], b"b", b"c"]);
        assert_eq!(trim_ows(b" \t x y \t"), b"x y");
        assert_eq!(list(b" , ,").count(), 0);
    }

    #[test]
    fn decimals_as_display_writes_them() {
        let mut d = [0u8; 20];
        for n in [0, 7, 10, 4096, u64::MAX] {
            assert_eq!(decimal(n, &mut d), n.to_string().as_bytes());
        }
    }
}
