//! IMF-fixdate (RFC 9110 §5.6.7) from Unix seconds, without reading a clock: the caller
//! passes the time. The calendar is `httpdate`'s (hyper's); the Date header is refreshed
//! once a second, off the per-request path, so a formatter there costs nothing that shows.

use std::io::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// The last second an IMF-fixdate can show with a four-digit year (9999-12-31T23:59:59Z).
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// Writes the IMF-fixdate for `unix_secs` (clamped to year 9999) into `out`.
pub fn format_imf_fixdate(unix_secs: u64, out: &mut [u8; IMF_FIXDATE_LEN]) {
    let secs = unix_secs.min(MAX_UNIX_SECS);
    // In range by the clamp: httpdate refuses only years past 9999.
    let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs));
    let mut rest = &mut out[..];
    // An IMF-fixdate is always IMF_FIXDATE_LEN bytes, so the write fills `out` exactly.
    let written = write!(rest, "{date}");
    debug_assert!(written.is_ok() && rest.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(secs: u64) -> String {
        let mut out = [0u8; IMF_FIXDATE_LEN];
        format_imf_fixdate(secs, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn rfc9110_imf_fixdate_example() {
        // RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT".
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn known_dates() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT"); // leap day, 400-year rule
        assert_eq!(fmt(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT"); // 2100 is not leap
        assert_eq!(fmt(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(fmt(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(fmt(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(fmt(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn dates_advance_day_by_day() {
        // Walk forward day by day from 1970 and check that the calendar advances one day at a
        // time with the right month lengths and weekdays.
        const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mut expect = (1970u32, 1u32, 1u32);
        for days in 0..(200 * 366) {
            let (y, m, d) = expect;
            let want = format!(
                "{}, {d:02} {} {y:04} 23:59:59 GMT",
                WEEKDAYS[days as usize % 7],
                MONTHS[m as usize - 1]
            );
            assert_eq!(fmt(days * 86_400 + 86_399), want, "days {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expect = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }
}
