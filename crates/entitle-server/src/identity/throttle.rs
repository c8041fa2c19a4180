//! Growing delays after failed sign-ins, and caps on emails per address.
//!
//! The arithmetic is here as plain functions; the rows live in the `throttles` table so
//! every server process on one database sees the same counts.

use crate::identity::store::ThrottleRow;

const WINDOW_MS: i64 = 24 * 3600 * 1000;
const HOUR_MS: i64 = 3600 * 1000;

/// Seconds a caller must wait after `failures` consecutive failures: none for the first
/// `free`, then 1, 2, 4, … seconds up to `max_delay_secs`.
pub fn delay_secs(failures: i64, free: i64, max_delay_secs: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = (failures - free).min(30) as u32;
    (1i64 << doublings).min(max_delay_secs)
}

/// The row after one more failure at `now`; counts restart after a quiet day.
pub fn after_failure(
    previous: Option<ThrottleRow>,
    now: i64,
    free: i64,
    max_delay_secs: i64,
) -> ThrottleRow {
    let (failures, window_started_at) = match previous {
        Some(p) if now - p.window_started_at < WINDOW_MS => (p.failures + 1, p.window_started_at),
        _ => (1, now),
    };
    ThrottleRow {
        failures,
        window_started_at,
        blocked_until: blocked_until(failures, now, free, max_delay_secs),
    }
}

/// When the next attempt may go ahead after `failures`. Nothing is blocked while attempts
/// are free: a request that read the clock a moment earlier but reached the row later must
/// not be refused by the one that overtook it.
fn blocked_until(failures: i64, now: i64, free: i64, max_delay_secs: i64) -> i64 {
    match delay_secs(failures, free, max_delay_secs) {
        0 => 0,
        delay => now + delay * 1000,
    }
}

/// Takes one attempt at `now`, before it is checked: the row to write when it may go
/// ahead, which already counts it as a failure (so attempts in flight are counted, and no
/// interleaving gets more than the rule allows), or the seconds to wait.
pub fn take_attempt(
    previous: Option<ThrottleRow>,
    now: i64,
    free: i64,
    max_delay_secs: i64,
) -> Result<ThrottleRow, i64> {
    match wait_secs(previous, now) {
        Some(wait) => Err(wait),
        None => Ok(after_failure(previous, now, free, max_delay_secs)),
    }
}

/// Gives back an attempt taken by [`take_attempt`] that succeeded.
pub fn refund(previous: ThrottleRow, now: i64, free: i64, max_delay_secs: i64) -> ThrottleRow {
    let failures = (previous.failures - 1).max(0);
    ThrottleRow {
        failures,
        window_started_at: previous.window_started_at,
        blocked_until: previous.blocked_until.min(blocked_until(
            failures,
            now,
            free,
            max_delay_secs,
        )),
    }
}

/// Seconds left before another attempt is allowed, if any.
pub fn wait_secs(row: Option<ThrottleRow>, now: i64) -> Option<i64> {
    row.filter(|r| r.blocked_until > now)
        .map(|r| (r.blocked_until - now + 999) / 1000)
}

/// Counts one email to an address; `None` when the hourly cap is reached.
pub fn after_email(previous: Option<ThrottleRow>, now: i64, per_hour: i64) -> Option<ThrottleRow> {
    let (sent, window_started_at) = match previous {
        Some(p) if now - p.window_started_at < HOUR_MS => (p.failures, p.window_started_at),
        _ => (0, now),
    };
    (sent < per_hour).then_some(ThrottleRow {
        failures: sent + 1,
        window_started_at,
        blocked_until: 0,
    })
}

pub fn account_key(email: &str) -> String {
    format!("signin:account:{email}")
}

pub fn address_key(ip: &str) -> String {
    format!("signin:address:{ip}")
}

/// Device user codes one person typed: guessing someone else's pending code is bounded.
pub fn user_code_key(account_id: uuid::Uuid) -> String {
    format!("device:account:{account_id}")
}

pub fn email_key(email: &str) -> String {
    format!("email:{email}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_free_attempts_and_are_capped() {
        let delays: Vec<i64> = (0..8).map(|n| delay_secs(n, 3, 10)).collect();
        assert_eq!(delays, vec![0, 0, 0, 1, 2, 4, 8, 10]);
        assert_eq!(delay_secs(10_000, 3, 900), 900);
    }

    #[test]
    fn failures_accumulate_and_restart_after_a_quiet_day() {
        let mut row = None;
        for _ in 0..5 {
            row = Some(after_failure(row, 1_000, 3, 900));
        }
        let r = row.expect("row");
        assert_eq!(r.failures, 5);
        assert_eq!(r.blocked_until, 1_000 + 4_000);
        assert_eq!(wait_secs(row, 1_000), Some(4));
        assert_eq!(wait_secs(row, 5_000), None);
        let later = after_failure(row, 1_000 + WINDOW_MS, 3, 900);
        assert_eq!(later.failures, 1);
        assert_eq!(later.blocked_until, 0, "free attempts block nothing");
    }

    #[test]
    fn a_free_attempt_that_read_the_clock_earlier_is_not_refused_by_a_later_one() {
        let later = take_attempt(None, 2_000, 5, 900).expect("first");
        assert!(take_attempt(Some(later), 1_990, 5, 900).is_ok());
    }

    #[test]
    fn attempts_are_counted_when_taken_and_refunded_when_they_succeed() {
        let mut row = None;
        let mut allowed = 0;
        // Taken at the same instant, as concurrent requests are: five go ahead.
        for _ in 0..12 {
            if let Ok(next) = take_attempt(row, 1_000, 5, 900) {
                row = Some(next);
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
        assert_eq!(take_attempt(row, 1_000, 5, 900).err(), Some(1));
        let r = row.expect("row");
        assert_eq!(r.failures, 5);
        let back = refund(r, 1_000, 5, 900);
        assert_eq!((back.failures, back.blocked_until), (4, 0));
        assert!(take_attempt(Some(back), 1_000, 5, 900).is_ok());
        let none = refund(
            ThrottleRow {
                failures: 0,
                window_started_at: 0,
                blocked_until: 0,
            },
            5,
            5,
            900,
        );
        assert_eq!(none.failures, 0);
    }

    #[test]
    fn emails_are_capped_per_hour() {
        let mut row = None;
        for _ in 0..3 {
            row = Some(after_email(row, 0, 3).expect("allowed"));
        }
        assert!(after_email(row, 10, 3).is_none());
        assert!(after_email(row, HOUR_MS, 3).is_some());
    }
}
