//! The clock high-water mark: the latest time this machine has trusted (its own clock
//! as it went, and the server times of the files it verified). An application persists
//! it between runs; a clock set back before it is refused, so that an expired license
//! cannot be revived by turning the clock back.

use crate::{Reason, LEEWAY_SECS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    high_water: u64,
}

impl Clock {
    /// A clock that has seen nothing yet.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// The mark as [`Clock::persisted`] wrote it; `None` when the text is not one.
    pub fn from_persisted(text: &str) -> Option<Clock> {
        text.trim()
            .parse()
            .ok()
            .map(|high_water| Clock { high_water })
    }

    /// The text to keep between runs.
    pub fn persisted(&self) -> String {
        self.high_water.to_string()
    }

    /// The latest time trusted so far, Unix seconds.
    pub fn high_water(&self) -> u64 {
        self.high_water
    }

    /// Checks the local time `now` (Unix seconds) against the mark and raises the mark
    /// to it: [`Reason::ClockRolledBack`] when `now` is earlier than a time already
    /// trusted by more than [`LEEWAY_SECS`].
    pub fn observe(&mut self, now: u64) -> Result<(), Reason> {
        if now.saturating_add(LEEWAY_SECS) < self.high_water {
            return Err(Reason::ClockRolledBack);
        }
        self.high_water = self.high_water.max(now);
        Ok(())
    }

    /// Raises the mark to a server time from a verified file or answer.
    pub fn trust(&mut self, server_time: u64) {
        self.high_water = self.high_water.max(server_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_set_back_is_refused_and_the_mark_survives_a_restart() {
        let mut clock = Clock::new();
        assert_eq!(clock.observe(1_000_000), Ok(()));
        clock.trust(1_000_600);
        assert_eq!(clock.observe(1_000_400), Ok(()), "within the leeway");
        assert_eq!(clock.observe(1_000_000), Err(Reason::ClockRolledBack));
        let kept = Clock::from_persisted(&clock.persisted()).expect("persisted");
        assert_eq!(kept.high_water(), 1_000_600);
        assert_eq!(Clock::from_persisted("yesterday"), None);
    }
}
